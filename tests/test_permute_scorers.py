"""`medtune eval --permute` with every scorer: cloze, generate and the encoder's multiple-choice head (the letter
scorer is in test_robustness.py). The unrotated pass is the plain eval; every other order is mapped back to the
original options, checked against scoring that order directly, or against a scorer whose answer depends only on
an option's content (then it is the same option in every order)."""

from __future__ import annotations

import json

import pytest

from medtune.data.schema import LETTERS, MCQItem
from medtune.eval.permute import orders_for, reorder


def _eval(tmp_path, out: str, sample_jsonl, model_obj=None, **kw) -> tuple[dict, list[dict], list[MCQItem]]:
    from medtune.eval.run import EvalConfig, evaluate_items, load_items

    cfg = EvalConfig(data=[str(sample_jsonl)], out=str(tmp_path / out), progress=False, batch_size=4, **kw)
    items, report = load_items(cfg)
    m = evaluate_items(cfg, items, report, model=model_obj)
    return m, [json.loads(x) for x in (tmp_path / out / "predictions.jsonl").read_text().splitlines()], items


def _plain_and_permuted(tmp_path, sample_jsonl, **kw) -> tuple[dict, list[dict], dict, list[dict], list[MCQItem]]:
    """A plain eval and a --permute cyclic one; the unrotated pass of the second is the first, exactly."""
    plain, plain_rows, _ = _eval(tmp_path, "plain", sample_jsonl, **kw)
    perm, perm_rows, items = _eval(tmp_path, "perm", sample_jsonl, permute="cyclic", **kw)
    primary = plain["primary"]
    assert perm["primary"] == primary and perm["results"] == plain["results"]
    assert [r["probabilities"] for r in perm_rows] == [r["probabilities"] for r in plain_rows]
    assert [r["orders"][0] for r in perm_rows] == [r["predicted"] for r in plain_rows]
    p = perm["permutation"][primary]
    assert p["orders"] == 5 and [o["n"] for o in p["per_order"]] == [sum(len(it.options) > k for it in items)
                                                                     for k in range(5)]
    assert p["per_order"][0]["accuracy"] == plain["results"][primary]["accuracy"]
    assert [len(r["orders"]) for r in perm_rows] == [len(it.options) for it in items]
    return plain, plain_rows, perm, perm_rows, items


def _content_only(perm: dict, rows: list[dict], name: str) -> None:
    """A scorer that sees each option alone gives, mapped back, the same option in every order, so order k's
    accuracy is the plain accuracy on the questions with more than k options. A question whose top two plain
    probabilities are within float noise may differ (batches pad differently); none of these is."""
    p = perm["permutation"][name]
    own = [r if r["scorer"] == name else {**r["other_scorers"][name], "orders": r["orders"]} for r in rows]
    gold = [r["gold"] for r in rows]
    assert all(sorted(r["probabilities"])[-1] - sorted(r["probabilities"])[-2] > 1e-5 for r in own)
    if name == rows[0]["scorer"]:  # predictions.jsonl holds the primary result's orders
        assert all(set(r["orders"]) == {r["predicted"]} and r["averaged"] == r["predicted"] for r in rows)
    correct = [r["predicted"] == g for r, g in zip(own, gold)]
    acc = perm["results"][name]["accuracy"]
    assert acc == sum(correct) / len(rows)
    for k, o in enumerate(p["per_order"]):
        shown = [c for c, r in zip(correct, rows) if len(r["orders"]) > k]
        assert o["accuracy"] == pytest.approx(sum(shown) / len(shown))
    assert p["consistency"] == 1.0 and p["averaged"]["accuracy"] == pytest.approx(acc)
    assert p["correct_every_order"] == pytest.approx(acc)


def test_cloze_orders_map_back_to_the_same_option_texts(tmp_path, tiny_model_dir, sample_jsonl):
    """cloze scores each option's text after the question alone, so an option's score does not depend on where
    it is shown: mapped back, every order gives the plain eval's answer, for cloze, cloze_norm and cloze_mean."""
    _, _, perm, rows, _ = _plain_and_permuted(tmp_path, sample_jsonl, model=str(tiny_model_dir),
                                              scorers=["cloze"])
    assert set(perm["permutation"]) == {"spec", "seed", "cloze", "cloze_norm", "cloze_mean"}
    for name in ("cloze", "cloze_norm", "cloze_mean"):
        assert [o["n"] for o in perm["permutation"][name]["per_order"]] == [40, 40, 40, 26, 13]
        _content_only(perm, rows, name)


def test_encoder_orders_map_back_to_the_same_option_texts(tmp_path, sample_jsonl):
    """The embedded MiniLM with a multiple-choice head encodes each option with the question alone: mapped back,
    every order gives the plain eval's answer. (Its new head's weights are scaled up so that no two options'
    probabilities are within float noise of each other.)"""
    import torch

    from medtune.backend import select_backend
    from medtune.models import load_encoder, resolve_model

    torch.manual_seed(0)
    model = load_encoder(resolve_model("minilm-l6"), select_backend("cpu"))
    with torch.no_grad():
        model.classifier.weight.mul_(1000.0)
    _, _, perm, rows, _ = _plain_and_permuted(tmp_path, sample_jsonl, model="minilm-l6", model_obj=model)
    assert perm["primary"] == "choice" and set(perm["permutation"]) == {"spec", "seed", "choice"}
    _content_only(perm, rows, "choice")


def _steered(model_dir, tokenizer):
    """The tiny Llama, steered by hooks on its forward pass to write the one letter its prompt shows before
    option 1's text (`option 1 for drug ...`): a real generation whose answer follows the option's content."""
    import re

    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    target: list[int] = []

    def read_prompts(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] > 1:  # the prefill: one prompt per row
            letters = [re.search(r"([A-J])\. option 1 for drug", tokenizer.decode(row, skip_special_tokens=True))
                       .group(1) for row in ids.tolist()]
            target[:] = tokenizer.convert_tokens_to_ids(letters)

    def write_letter(module, args, output):
        output[torch.arange(len(target)), -1, torch.tensor(target)] += 1e4
        return output

    model.register_forward_pre_hook(read_prompts, with_kwargs=True)
    model.lm_head.register_forward_hook(write_letter)
    return model


def test_generate_orders_equal_generating_each_order_directly(tmp_path, tiny_model_dir, tiny_tokenizer,
                                                              sample_jsonl):
    """The generative scorer shows the options in order, so a letter moves with its option: with a model that
    writes the letter shown before option 1's text, each order's answer, mapped back, is option 1, and equals
    the answer generated for that order on its own, mapped back by hand."""
    from medtune.eval.run import run_scorer
    from medtune.eval.scorers import ScorerOptions

    model = _steered(tiny_model_dir, tiny_tokenizer)
    kw = dict(model=str(tiny_model_dir), scorers=["generate"], max_new_tokens=1, limit=12, model_obj=model)
    plain, plain_rows, perm, rows, items = _plain_and_permuted(tmp_path, sample_jsonl, **kw)
    assert [r["generation"] for r in rows] == [r["generation"] for r in plain_rows]
    assert all(r["orders"] == ["B"] * len(r["orders"]) and r["averaged"] == "B" for r in rows)
    acc = sum(it.answer_index == 1 for it in items) / 12
    p = perm["permutation"]["generate"]
    assert plain["results"]["generate"]["accuracy"] == p["averaged"]["accuracy"] == p["correct_every_order"] == acc
    assert p["consistency"] == 1.0
    for k in range(1, 5):
        qs = [q for q, it in enumerate(items) if len(it.options) > k]
        orders = [orders_for(items[q], "cyclic", 0)[k] for q in qs]
        alone = run_scorer(model, tiny_tokenizer, [reorder(items[q], o) for q, o in zip(qs, orders)], "generate",
                           None, batch_size=1, device="cpu", options=ScorerOptions(max_new_tokens=1))
        assert [r["generation"] for r in alone.rows] == [LETTERS[o.index(1)] for o in orders]  # shown, not mapped
        want = [LETTERS[o[p]] for p, o in zip(alone.predicted["generate"], orders)]
        assert [rows[q]["orders"][k] for q in qs] == want == ["B"] * len(qs)


def _fake_generations(monkeypatch, answer) -> None:
    """Replace the model's generations by `answer(item) -> text` (the extraction stays medtune's)."""
    from medtune.eval import generate as G

    def fake(model, tokenizer, items, **kw):
        out = []
        for it in items:
            text = answer(it)
            found = G.extract_answer(text, it.options)
            out.append(G.Generated(text, "", text, found.index, found.how, 3))
        return out

    monkeypatch.setattr(G, "generate_answers", fake)


@pytest.mark.parametrize("spec", ["cyclic", 3])
def test_generate_orders_follow_the_option_not_its_letter(tmp_path, tiny_model_dir, sample_jsonl, monkeypatch,
                                                          spec):
    """A generator that names the letter where option 1's text is shown (and cannot be read on every fifth
    question): mapped back, option 1 in every order; never-read questions stay unanswered (counted wrong, never
    a default letter) in the permutation-averaged prediction and are not 'consistent'."""
    def answer(it: MCQItem) -> str:
        if int(it.id[1:]) % 5 == 0:
            return "I am not sure."
        return f"Answer: {LETTERS[[o.startswith('option 1 ') for o in it.options].index(True)]}"

    _fake_generations(monkeypatch, answer)
    m, rows, items = _eval(tmp_path, "fake", sample_jsonl, model=str(tiny_model_dir), scorers=["generate"],
                           permute=spec)
    read = [int(it.id[1:]) % 5 != 0 for it in items]
    assert all(r["orders"] == ["B"] * len(r["orders"]) if ok else set(r["orders"]) == {None}
               for r, ok in zip(rows, read))
    assert [r["averaged"] for r in rows] == ["B" if ok else None for ok in read]
    p = m["permutation"]["generate"]
    acc = sum(ok and it.answer_index == 1 for ok, it in zip(read, items)) / 40
    assert m["results"]["generate"]["accuracy"] == acc and p["averaged"]["accuracy"] == acc
    for k, o in enumerate(p["per_order"]):  # cyclic: order k covers the questions with more than k options
        shown = [q for q, r in enumerate(rows) if len(r["orders"]) > k]
        assert o["accuracy"] == sum(read[q] and items[q].answer_index == 1 for q in shown) / len(shown)
        assert o["unanswered"] == sum(not read[q] for q in shown) and o["n"] == len(shown)
    assert p["spread"] == (0.0 if spec == 3 else max(o["accuracy"] for o in p["per_order"]) - min(
        o["accuracy"] for o in p["per_order"]))
    assert p["correct_every_order"] == acc and p["consistency"] == sum(read) / 40 == 0.8
    assert p["orders"] == (5 if spec == "cyclic" else 3)


def test_generate_always_a_maps_back_to_each_rotations_first_option(tmp_path, tiny_model_dir, sample_jsonl,
                                                                   monkeypatch):
    """A generator that always answers A: rotation k shows original option k first, so order k's accuracy is
    the share of questions (with more than k options) whose gold is option k; no answer is the same twice."""
    _fake_generations(monkeypatch, lambda it: "Answer: A")
    m, rows, items = _eval(tmp_path, "always-a", sample_jsonl, model=str(tiny_model_dir), scorers=["generate"],
                           permute="cyclic")
    assert all(r["orders"] == list(LETTERS[:len(r["orders"])]) for r in rows)
    p = m["permutation"]["generate"]
    for k, o in enumerate(p["per_order"]):
        shown = [it for it in items if len(it.options) > k]
        assert (o["n"], o["accuracy"]) == (len(shown), sum(it.answer_index == k for it in shown) / len(shown))
    assert p["consistency"] == 0.0 and p["bias_pooled"]["recall"]["A"] == 1.0
