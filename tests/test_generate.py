"""The generative scorer on a tiny random Llama (machinery, not accuracy): prompts, batching, stopping,
and what score_generate hands to the eval."""

from __future__ import annotations

import pytest

from medtune.data.schema import MCQItem
from medtune.eval import generate as G

QWEN3_LIKE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
              "{% if add_generation_prompt %}<|im_start|>assistant\n"
              "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
              "{% endif %}")


def _items(n: int = 7) -> list[MCQItem]:
    out = []
    for i in range(n):
        k = 2 + i % 4
        out.append(MCQItem(id=f"g{i}", question="Which drug treats condition " + "very " * (i * 3) + f"{i}?",
                           options=tuple(f"option {j} for drug {i}" for j in range(k)), answer_index=i % k,
                           context="A short abstract." if i == 2 else None))
    return out


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, tiny_tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), tiny_tokenizer


def test_prompt_is_a_chat_turn_with_letters_and_the_answer_line(tiny_tokenizer):
    item = _items()[2]
    p = G.generative_prompt(item, tiny_tokenizer)
    assert p.startswith("<|im_start|>user\nAnswer the following multiple-choice question about medicine.\n\n"
                        "Context:\nA short abstract.\n\nQuestion: Which drug")
    assert "\nA. option 0 for drug 2\nB. option 1 for drug 2\nC. option 2 for drug 2\nD. option 3 for drug 2\n\n" in p
    assert p.endswith('End your reply with a final line of the form "Answer: X", where X is the letter of the '
                      "correct option (A, B, C or D).<|im_end|>\n<|im_start|>assistant\n")
    assert "(A or B)" in G.generative_prompt(_items()[0], tiny_tokenizer)


def test_thinking_switch_where_the_template_has_one(tiny_tokenizer):
    tok = tiny_tokenizer.__class__(tokenizer_object=tiny_tokenizer.backend_tokenizer, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    tok.chat_template = QWEN3_LIKE
    item = _items()[0]
    assert G.supports_thinking(tok) and not G.supports_thinking(tiny_tokenizer)
    assert G.generative_prompt(item, tok, thinking=False).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert G.generative_prompt(item, tok, thinking=True).endswith("<|im_start|>assistant\n")
    # a template without the switch renders the same either way
    assert G.generative_prompt(item, tiny_tokenizer, thinking=True) == G.generative_prompt(item, tiny_tokenizer)
    tok.chat_template = None
    plain = G.generative_prompt(item, tok)
    assert plain.startswith("Answer the following") and plain.endswith("correct option (A or B).\nAnswer:")


def test_batched_generation_equals_one_by_one(tiny):
    model, tok = tiny
    items = _items()
    one = G.generate_answers(model, tok, items, max_new_tokens=12, batch_size=1)
    batched = G.generate_answers(model, tok, items, max_new_tokens=12, batch_size=3)
    assert [g.text for g in batched] == [g.text for g in one]
    assert [g.n_new_tokens for g in batched] == [g.n_new_tokens for g in one]
    assert all(1 <= g.n_new_tokens <= 12 for g in one) and any(g.text for g in one)
    # greedy and bounded: 12 tokens begin with the 5-token generation
    short = G.generate_answers(model, tok, items, max_new_tokens=5, batch_size=3)
    for s, full in zip(short, one):
        assert s.n_new_tokens == min(5, full.n_new_tokens)
        assert full.text.startswith(s.text)


def test_generation_stops_at_end_of_sequence_and_counts_tokens(tiny):
    model, tok = tiny
    eos = tok.convert_tokens_to_ids("<|im_end|>")

    calls = []

    def eos_from_third_token(module, args, output):
        # a model that writes two tokens of its own, then ends its turn (one lm_head call per new token)
        if len(calls) >= 2:
            output[:, -1, eos] += 1e4
        calls.append(1)
        return output

    free = G.generate_answers(model, tok, _items(2), max_new_tokens=2, batch_size=2)
    handle = model.lm_head.register_forward_hook(eos_from_third_token)
    try:
        got = G.generate_answers(model, tok, _items(2), max_new_tokens=20, batch_size=2)
    finally:
        handle.remove()
    assert len(calls) == 3  # generation stopped at the end-of-sequence token, not at 20
    assert [g.n_new_tokens for g in got] == [3, 3]  # two tokens and the end-of-sequence token
    assert [g.text for g in got] == [g.text for g in free]  # the end-of-sequence token is not in the text


def test_score_generate_reports_predictions_rows_and_unparseable(monkeypatch):
    items = _items(4)
    texts = ["<think>hmm</think>\nAnswer: B", "I cannot tell.", "Answer: A or B", "option 2 for drug 3"]
    fake = []
    for it, t, n in zip(items, texts, [3, 3, 4, 5]):
        reasoning, answer = G.split_thinking(t)
        found = G.extract_answer(t, it.options)
        fake.append(G.Generated(t, reasoning, answer, found.index, found.how, n_new_tokens=n))
    monkeypatch.setattr(G, "generate_answers", lambda *a, **k: fake)
    out = G.score_generate(None, None, items, None, batch_size=2, device="cpu", progress=None,
                           max_new_tokens=4, thinking=False)
    assert out.predicted == {"generate": [1, None, None, 2]}
    low = G.UNPARSEABLE_SCORE
    assert out.scores["generate"] == [[low, 0.0], [0.0, 0.0, 0.0], [0.0] * 4, [low, low, 0.0, low, low]]
    assert out.rows[0] == {"generation": texts[0], "reasoning": "hmm", "extraction": "answer-line"}
    assert [r["extraction"] for r in out.rows] == ["answer-line", "none", "hedge", "option-text"]
    assert out.extra["unparseable"] == 2 and out.extra["unparseable_rate"] == 0.5
    assert out.extra["mean_new_tokens"] == (3 + 3 + 4 + 5) / 4
    assert out.extra["hit_max_new_tokens"] == 2  # 4 and 5 tokens reached max_new_tokens=4
    assert out.extra["extraction"] == {"answer-line": 1, "hedge": 1, "none": 1, "option-text": 1}


def test_scorer_registry_runs_the_generative_scorer(tiny):
    from medtune.eval.scorers import ScorerOptions, get_scorer

    model, tok = tiny
    items = _items(5)
    out = get_scorer("generate").run(model, tok, items, None, batch_size=2, device="cpu",
                                     options=ScorerOptions(max_new_tokens=6))
    direct = G.generate_answers(model, tok, items, max_new_tokens=6, batch_size=5)
    assert [r["generation"] for r in out.rows] == [g.text for g in direct]
    assert out.predicted["generate"] == [G.extract_answer(g.text, it.options).index for g, it in zip(direct, items)]
    assert [len(s) for s in out.scores["generate"]] == [len(it.options) for it in items]
    assert out.extra["max_new_tokens"] == 6 and out.extra["thinking"] is False


def test_bad_settings_are_one_line_errors(tiny):
    from medtune.errors import MedtuneError

    model, tok = tiny
    with pytest.raises(MedtuneError, match=r"^--max-new-tokens: must be at least 1, got 0$"):
        G.generate_answers(model, tok, _items(1), max_new_tokens=0)
    with pytest.raises(MedtuneError, match=r"^--generate-backend: unknown generation backend 'tgi'"):
        G.generate_answers(model, tok, _items(1), backend="tgi")


def test_vllm_backend_is_optional_and_says_so(tiny):
    import importlib.util

    from medtune.errors import MedtuneError

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    model, tok = tiny
    with pytest.raises(MedtuneError, match=r"^--generate-backend: vLLM is not installed \(pip install vllm\); "
                                           r"the default backend is hf$"):
        G.generate_answers(model, tok, _items(1), backend="vllm")


@pytest.mark.parametrize("prompt_end, text, reasoning, index, how", [
    # the template opened the think block in the prompt (DeepSeek-R1 style): the text starts inside it
    ("<|im_start|>assistant\n<think>\n", "deltoid: axillary, so B\n</think>\n\nAnswer: B", "deltoid: axillary, so B",
     1, "answer-line"),
    ("<|im_start|>assistant\n<think>\n", "deltoid: axillary, so Answer: B", "deltoid: axillary, so Answer: B",
     None, "none"),  # cut off while thinking: the answer inside the reasoning does not count
    ("<|im_start|>assistant\n", "Answer: B", "", 1, "answer-line"),
    ("<|im_start|>assistant\n<think>\n\n</think>\n\n", "Answer: A", "", 0, "answer-line"),  # thinking off
])
def test_reading_a_reply_strips_the_reasoning(tiny_tokenizer, prompt_end, text, reasoning, index, how):
    item = MCQItem(id="d", question="Deltoid?", options=("Radial nerve", "Axillary nerve"), answer_index=1)
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
    got = G._read(tiny_tokenizer, item, "<|im_start|>user\nDeltoid?<|im_end|>\n" + prompt_end, ids)
    assert got.text == text and got.n_new_tokens == len(ids)
    assert (got.reasoning, got.index, got.how) == (reasoning, index, how)
