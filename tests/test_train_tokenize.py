"""Fast tokenization of training examples: the chat frame, the split at added tokens, the compact example
store and the content-keyed cache of tokenized examples. Tokenizers here are the tiny BPE one trained in
conftest (ChatML template) and the Qwen2.5 tokenizer shipped with medtune."""

from __future__ import annotations

import copy
import pickle

import pytest

from medtune.data.chatframe import apply, chat_frame
from medtune.eval.scoring import move_spaces
from medtune.train.examples import _encode_moved, build_example, build_examples, encode_pairs
from medtune.train.recipe import load_recipe
from medtune.train.tokenize import IGNORE, TokenizedExamples, split_encode


def _items(sample_jsonl):
    from medtune.data import load_benchmark

    return load_benchmark(str(sample_jsonl))[0]


@pytest.fixture(scope="module")
def qwen_tokenizer():
    from transformers import AutoTokenizer

    from conftest import ROOT

    return AutoTokenizer.from_pretrained(ROOT / "medtune" / "resources" / "tokenizers" / "qwen2.5")


def test_the_chat_frame_renders_exactly_what_the_template_renders(tiny_tokenizer, qwen_tokenizer):
    for tok in (tiny_tokenizer, qwen_tokenizer):
        frame = chat_frame(tok, "You answer medical questions.", False)
        assert frame is not None
        for text in ("Which nerve?\nA. x\nB. y\nAnswer:", "  spaces and {braces}  ", "<b>tag</b>"):
            assert frame[0] + text + frame[1] == apply(tok, "You answer medical questions.", text, False)


def test_a_template_that_trims_the_text_gets_no_frame(tiny_tokenizer):
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] | trim }}<|im_end|>\n"
                         "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    assert chat_frame(tok, "", False) is None
    from medtune.data.prompts import render

    item = _items_for(tok)
    assert render(item, "chat", tok).prompt.startswith("<|im_start|>user\nThe following")


def _items_for(tok):
    from medtune.data.schema import MCQItem

    return MCQItem(id="q1", question="Which drug?", options=("a", "b", "c", "d"), answer_index=2)


@pytest.mark.parametrize("template", ["chat", "plain"])
def test_one_batched_pass_gives_the_ids_of_one_question_at_a_time(tiny_tokenizer, qwen_tokenizer, sample_jsonl,
                                                                   template):
    items = _items(sample_jsonl)
    for tok in (tiny_tokenizer, qwen_tokenizer):
        for target, loss_on in (("letter", "answer"), ("letter_text_explanation", "all")):
            batched = build_examples(items, tok, template, target, 64, loss_on)
            assert list(batched) == [build_example(it, tok, template, target, 64, loss_on) for it in items]


def test_the_split_at_added_tokens_agrees_with_the_two_call_rule(qwen_tokenizer):
    moved = [move_spaces(f"<|im_start|>user\nQ{i}: which one?<|im_end|>\n<|im_start|>assistant\n", "C")
             for i in range(50)] + [move_spaces("no added token here: Answer:", " B")]
    fast = split_encode(qwen_tokenizer, moved)
    assert fast == _encode_moved(qwen_tokenizer, moved)
    assert fast[0][1] == qwen_tokenizer("\nC", add_special_tokens=False)["input_ids"]


def test_a_tokenizer_where_the_split_is_wrong_falls_back_to_the_two_call_rule(tiny_tokenizer):
    from tokenizers import AddedToken

    tok = copy.deepcopy(tiny_tokenizer)
    tok.add_tokens([AddedToken("<|sep|>", rstrip=True, special=True)])  # eats the spaces after it
    pairs = [(f"Q{i} <|sep|>  Answer:", "A") for i in range(20)]
    fast = split_encode(tok, [move_spaces(c, k) for c, k in pairs])
    reference = _encode_moved(tok, [move_spaces(c, k) for c, k in pairs])
    assert fast != reference  # tokenizing the tail alone keeps the spaces the joint text loses
    assert encode_pairs(tok, pairs) == reference


def test_tokenized_examples_behave_like_a_list_and_pickle_in_one_piece():
    b = TokenizedExamples.builder(400)
    b.add([5, 6, 7, 8], [IGNORE, IGNORE, 7, 8])
    b.add([9, 10], [9, 10])
    ex = b.finish()
    assert len(ex) == 2 and ex.lengths == [4, 2] and ex.ids.dtype.name == "uint16"
    assert ex[0] == {"input_ids": [5, 6, 7, 8], "labels": [IGNORE, IGNORE, 7, 8]}
    assert ex[-1] == {"input_ids": [9, 10], "labels": [9, 10]} and ex[1:] == [ex[1]]
    assert pickle.loads(pickle.dumps(ex)) == ex and list(ex) == [ex[0], ex[1]]
    assert TokenizedExamples.from_arrays(ex.to_arrays()) == ex
    bad = {**ex.to_arrays(), "starts": ex.starts + 5}         # a label start past its example's end
    assert TokenizedExamples.from_arrays(bad) is None
    with pytest.raises(IndexError):
        ex[2]
    with pytest.raises(ValueError, match="labels must be -100 up to a position"):
        b.add([1, 2, 3], [IGNORE, 5, 3])
    assert TokenizedExamples.builder(152_000).finish().ids.dtype.name == "int32"


def _recipe(tmp_path, template="chat", cache=True):
    return load_recipe("demo-cpu", [f"data.template={template}", "data.max_length=64", f"data.cache={cache}",
                                    f"output_dir={tmp_path / 'run'}"])


def test_tokenized_examples_are_reused_and_invalidated(tmp_path, monkeypatch, capsys, tiny_tokenizer, sample_jsonl):
    from medtune.train.trainset import cached_examples

    monkeypatch.setenv("MEDTUNE_CACHE", str(tmp_path / "cache"))
    items = _items(sample_jsonl)

    def run(tok, template, cache=True):
        out = cached_examples(items, tok, _recipe(tmp_path, template, cache), template, False)
        return out, "tokenized examples from the cache" in capsys.readouterr().out

    first, hit = run(tiny_tokenizer, "chat")
    assert not hit and len(first) == len(items)
    again, hit = run(tiny_tokenizer, "chat")
    assert hit and again == first
    plain, hit = run(tiny_tokenizer, "plain")  # another template: tokenized again
    assert not hit and plain != first
    other = copy.deepcopy(tiny_tokenizer)
    other.chat_template = tiny_tokenizer.chat_template.replace("<|im_start|>", "<|im_start|> ")
    changed, hit = run(other, "chat")  # another tokenizer (its chat template differs): tokenized again
    assert not hit and changed != first
    yaml = tmp_path / "mine.yaml"
    yaml.write_text("name: mine\nchat: true\nlayout: \"{question}\\n{options}\"\nanswer_cue: \"\\nAnswer:\"\n")
    run(tiny_tokenizer, str(yaml))
    yaml.write_text("name: mine\nchat: true\nlayout: \"Q: {question}\\n{options}\"\nanswer_cue: \"\\nAnswer:\"\n")
    _, hit = run(tiny_tokenizer, str(yaml))  # the same path with other contents: tokenized again
    assert not hit
    _, hit = run(tiny_tokenizer, str(yaml))
    assert hit
    entries = sorted((tmp_path / "cache" / "data-cache" / "train-examples").rglob("*.npz"))
    assert len(entries) == 5  # chat, plain, the other tokenizer, the YAML before and after its change
    _, hit = run(tiny_tokenizer, "chat", cache=False)  # data.cache=false: neither read nor written
    assert not hit and sorted((tmp_path / "cache" / "data-cache" / "train-examples").rglob("*")) == sorted(
        [*entries, *{e.parent for e in entries}])
