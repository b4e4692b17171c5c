"""Our batched, prefix-sharing scorers give lm-evaluation-harness's log-likelihoods exactly.

The reference below follows lm-eval's HFLM: `_encode_pair` (trailing context whitespace moves to
the continuation; continuation = enc(whole)[len(enc(context)):]) and `_loglikelihood_tokens`
(one unpadded sequence per option, sum of the continuation tokens' log-probabilities). Its
`acc` is the argmax of that sum and `acc_norm` the argmax of the sum over the choice's length in
characters. Models are tiny and random, from real architecture configs.
"""

from __future__ import annotations

import pytest
import torch

from conftest import shared_path
from medtune.data import load_benchmark
from medtune.data.prompts import render
from medtune.eval.run import score_items


def lm_eval_encode_pair(tok, context, continuation):
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole_enc = tok(context + continuation, add_special_tokens=False)["input_ids"]
    context_enc = tok(context, add_special_tokens=False)["input_ids"]
    return context_enc, whole_enc[len(context_enc):]


def lm_eval_loglikelihood(model, tok, context, choice):
    cont = choice if context[-1:].isspace() else " " + choice  # lm-eval's target_delimiter " "
    ctx_enc, cont_enc = lm_eval_encode_pair(tok, context, cont)
    inp = torch.tensor([(ctx_enc + cont_enc)[:-1]])
    n = len(cont_enc)
    with torch.no_grad():  # log-softmax of the continuation positions only (the rest is unused)
        logp = torch.log_softmax(model(inp).logits[0, -n:].float(), dim=-1)
    return sum(float(logp[j, t]) for j, t in enumerate(cont_enc))


def _check(model, tok, items, template, batch_size):
    model.eval()
    for scorer in ("letter", "cloze"):
        ours, truncated = score_items(model, tok, items, scorer, template, batch_size=batch_size, device="cpu")
        assert truncated == 0
        for i, item in enumerate(items):
            p = render(item, template, tok, cloze=scorer == "cloze")
            ref = [lm_eval_loglikelihood(model, tok, p.prompt, c) for c in p.choices]
            got = ours[scorer][i]
            assert got == pytest.approx(ref, abs=2e-4), (scorer, template, item.id)
            assert max(range(len(ref)), key=ref.__getitem__) == max(range(len(got)), key=got.__getitem__)
            if scorer == "cloze":
                norm = [r / len(c) for r, c in zip(ref, p.choices)]  # lm-eval acc_norm
                assert ours["cloze_norm"][i] == pytest.approx(norm, abs=2e-4)


@pytest.mark.parametrize("template", ["chat", "plain"])
@pytest.mark.parametrize("batch_size", [1, 7])
def test_matches_lm_eval_rule_tiny_llama(tiny_model_dir, tiny_tokenizer, sample_jsonl, template, batch_size):
    from transformers import AutoModelForCausalLM

    tok = tiny_tokenizer
    assert tok(" A", add_special_tokens=False)["input_ids"] != tok("A", add_special_tokens=False)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    items, _ = load_benchmark(str(sample_jsonl))  # 3, 4 and 5 options mixed in one batch
    _check(model, tok, items[:15], template, batch_size)


def test_matches_lm_eval_rule_qwen_tokenizer():
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tok = AutoTokenizer.from_pretrained(str(shared_path("models/qwen2.5-tokenizer")))
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=2048)
    model = Qwen3ForCausalLM(cfg)
    items, _ = load_benchmark(str(shared_path("data/pubmedqa/pqa_labeled.jsonl")))
    _check(model, tok, items[:4], "chat", 3)  # long abstracts as context, yes/no/maybe
    items, _ = load_benchmark(str(shared_path("data/medqa/dev.jsonl")))
    _check(model, tok, items[:6], "plain", 4)


def test_truncation_is_reported_and_long_limits_change_nothing(tiny_model_dir, tiny_tokenizer, sample_jsonl):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    items, _ = load_benchmark(str(sample_jsonl))
    full, t0 = score_items(model, tiny_tokenizer, items[:5], "letter", "plain", batch_size=4, device="cpu")
    same, t1 = score_items(model, tiny_tokenizer, items[:5], "letter", "plain", batch_size=4, device="cpu",
                           max_length=500)
    cut, t2 = score_items(model, tiny_tokenizer, items[:5], "letter", "plain", batch_size=4, device="cpu",
                          max_length=12)
    assert (t0, t1, t2) == (0, 0, 5)
    flat = [x for row in full["letter"] for x in row]
    assert [x for row in same["letter"] for x in row] == pytest.approx(flat, abs=1e-5)
    assert [x for row in cut["letter"] for x in row] != pytest.approx(flat, abs=1e-5)


@pytest.mark.parametrize("template", ["chat", "plain"])
def test_shared_prefix_reuse_changes_no_prediction(tiny_model_dir, tiny_tokenizer, sample_jsonl, template):
    """The speed path (the prompt prefix all questions share runs once, its KV cache reused) gives the
    same scores, to float rounding, and the same predictions as recomputing it in every batch."""
    from transformers import AutoModelForCausalLM

    from medtune.eval.scoring import build_request, common_prefix, score_requests

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    items, _ = load_benchmark(str(sample_jsonl))
    for cloze in (False, True):
        prompts = [render(it, template, tiny_tokenizer, cloze=cloze) for it in items]
        reqs = [build_request(tiny_tokenizer, p.prompt, p.choices) for p in prompts]
        shared = common_prefix(reqs)
        assert len(shared) >= 8  # the instruction (and chat turn) is shared: the fast path is taken
        assert "Question:" in tiny_tokenizer.decode(shared)
        for bs in (1, 6):
            fast = score_requests(model, reqs, batch_size=bs, pad_id=tiny_tokenizer.pad_token_id)
            slow = score_requests(model, reqs, batch_size=bs, pad_id=tiny_tokenizer.pad_token_id,
                                  reuse_prefix=False)
            for f, s in zip(fast, slow):
                assert f.logliks == pytest.approx(s.logliks, abs=1e-4)
                assert f.n_tokens == s.n_tokens
                assert max(range(len(f.logliks)), key=f.logliks.__getitem__) == \
                    max(range(len(s.logliks)), key=s.logliks.__getitem__)


def test_no_prefix_reuse_when_contexts_would_be_cut(tiny_tokenizer, sample_jsonl):
    from medtune.eval.scoring import build_request, common_prefix

    items, _ = load_benchmark(str(sample_jsonl))
    reqs = [build_request(tiny_tokenizer, render(it, "plain", tiny_tokenizer).prompt, "ABCDE"[:len(it.options)])
            for it in items]
    assert common_prefix(reqs) and common_prefix(reqs, max_length=10_000) == common_prefix(reqs)
    assert common_prefix(reqs, max_length=12) == []  # cutting from the left would remove the prefix
    assert common_prefix(reqs[:1]) == []


def test_share_splits_every_question_once_with_balanced_lengths():
    from medtune.eval.scoring import Request, share

    reqs = [Request(list(range(5 + (i * 37) % 90)), [[1], [2]]) for i in range(101)]
    parts = [share(reqs, r, 3) for r in range(3)]
    assert sorted(i for p in parts for i in p) == list(range(101))
    assert sorted(len(p) for p in parts) == [33, 34, 34]
    tokens = [sum(len(reqs[i].context) for i in p) for p in parts]
    assert max(tokens) - min(tokens) <= max(len(r.context) for r in reqs)  # within one question's length
    assert share(reqs, 0, 1) == sorted(range(101), key=lambda i: -len(reqs[i].context))


def test_passes_hold_a_budget_of_tokens_not_a_fixed_count():
    """Longest first, each pass at most batch_size x the median question's tokens (padding included):
    long questions alone, short ones several to a pass, never more than 4 x batch_size."""
    from medtune.eval.scoring import Request, passes

    lengths = [40, 20, 20] + [10] * 7  # + 1 continuation token each: 41, 21, 21, 11 x 7; median 11
    reqs = [Request(list(range(n)), [[1], [2]]) for n in lengths]
    order = list(range(len(reqs)))
    assert passes(reqs, order, 2) == [[0], [1], [2], [3, 4], [5, 6], [7, 8], [9]]  # budget 2 x 11 = 22
    assert passes(reqs, order, 4) == [[0], [1, 2], [3, 4, 5, 6], [7, 8, 9]]  # budget 44
    # a reused prefix of 5 tokens is not counted: lengths 36, 16, 16, 6 x 7; budget 2 x 6 = 12
    assert passes(reqs, order, 2, skip=5) == [[0], [1], [2], [3, 4], [5, 6], [7, 8], [9]]
    # short questions behind a median of long ones (100 tokens, budget 200): capped at 4 x batch_size
    mixed = [Request(list(range(99)), [[1]]) for _ in range(21)] + [Request([0], [[1]]) for _ in range(20)]
    assert [len(p) for p in passes(mixed, list(range(41)), 2)] == [2] * 11 + [8, 8, 3]
    assert passes(mixed, [], 2) == []
    assert sum(passes(reqs, order[::-1], 3), []) == order[::-1]  # every question once, in the order given


def test_target_gather_equals_full_log_softmax():
    """The cloze/letter scorers gather log p(target) per distinct position, in chunks of positions:
    the same numbers as a float32 log-softmax over [rows, positions, vocab] indexed at the targets."""
    from medtune.eval.batch import _target_logprobs

    torch.manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        logits = (torch.randn(3, 5, 1000) * 6).to(dtype)
        rows, cols = [0, 0, 0, 1, 2, 2, 1], [4, 4, 1, 0, 3, 3, 0]
        toks = [7, 999, 0, 512, 3, 3, 4]
        full = torch.log_softmax(logits.float(), dim=-1)
        want = [float(full[r, c, t]) for r, c, t in zip(rows, cols, toks)]
        for chunk in (1 << 24, 1000, 2500, 1):  # one chunk; one position a chunk; 2 a chunk; degenerate
            got = _target_logprobs(logits, rows, cols, toks, chunk_elems=chunk)
            assert got.dtype == torch.float32 and got.shape == (7,)
            assert got.tolist() == pytest.approx(want, abs=1e-5)


def test_cloze_scores_equal_the_full_log_softmax_implementation(tiny_model_dir, tiny_tokenizer, sample_jsonl):
    """End to end on multi-token options (second pass included), against the previous implementation's
    rule: a float32 log-softmax of every kept position, summed at the continuation tokens."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    items, _ = load_benchmark(str(sample_jsonl))
    got, _ = score_items(model, tiny_tokenizer, items[:6], "cloze", "plain", batch_size=3, device="cpu")
    for i, item in enumerate(items[:6]):
        p = render(item, "plain", tiny_tokenizer, cloze=True)
        ref = [lm_eval_loglikelihood(model, tiny_tokenizer, p.prompt, c) for c in p.choices]
        assert got["cloze"][i] == pytest.approx(ref, abs=1e-5)


def test_processed_and_question_tokens(tiny_model_dir, tiny_tokenizer, sample_jsonl):
    """What ran through the model (the shared prefix once, no padding) and the questions' own tokens."""
    from transformers import AutoModelForCausalLM

    from medtune.eval.scoring import build_request, common_prefix, score_requests
    from medtune.eval.loglik import score_letter

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    items, _ = load_benchmark(str(sample_jsonl))
    items = items[:9]
    reqs = [build_request(tiny_tokenizer, render(it, "plain").prompt, "ABCDE"[:len(it.options)]) for it in items]
    shared = common_prefix(reqs)
    fast, slow = {}, {}
    score_requests(model, reqs, batch_size=4, pad_id=tiny_tokenizer.pad_token_id, stats=fast)
    score_requests(model, reqs, batch_size=4, pad_id=tiny_tokenizer.pad_token_id, stats=slow, reuse_prefix=False)
    contexts = sum(len(r.context) for r in reqs)
    assert slow["processed"] == contexts  # letters are one token: only the contexts run
    assert fast["processed"] == contexts - (len(reqs) - 1) * len(shared)  # the shared prefix ran once
    assert slow["padded"] >= slow["processed"]
    out = score_letter(model, tiny_tokenizer, items, "plain", batch_size=4, device="cpu")
    assert out.tokens["processed"] == fast["processed"]
    assert out.tokens["questions"] == contexts + sum(len(c) for r in reqs for c in r.continuations)
