"""Lean, honest training: the LM head only where labels are, packing per example, the selection split,
one scoring regime, option shuffling, the tokenization cache, the core-only import set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import ROOT, run_cli, write_recipe
from medtune.train.recipe import load_recipe


def _items(sample_jsonl, n=6):
    from medtune.data import load_benchmark

    return load_benchmark(str(sample_jsonl))[0][:n]


def _model(tiny_model_dir, attn="sdpa"):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attn).eval()
    model.config.use_cache = False
    return model


@pytest.mark.parametrize("loss_on", ["answer", "all"])
def test_head_on_labels_gives_the_full_head_loss(tiny_model_dir, tiny_tokenizer, sample_jsonl, loss_on):
    from peft import LoraConfig, get_peft_model

    from medtune.train.examples import PadCollator, build_examples
    from medtune.train.trainer import labelled_loss

    feats = build_examples(_items(sample_jsonl), tiny_tokenizer, "chat", "letter_text", 512, loss_on)
    batch = PadCollator(tiny_tokenizer.pad_token_id)(feats)
    model = _model(tiny_model_dir)
    with torch.no_grad():
        full = model(**batch).loss
        lean = labelled_loss(model, batch)
        n = (batch["labels"][:, 1:] != -100).sum()
        full_sum = model(**batch, num_items_in_batch=n).loss
        lean_sum = labelled_loss(model, batch, num_items_in_batch=n)
    torch.testing.assert_close(lean, full, rtol=1e-5, atol=0)
    torch.testing.assert_close(lean_sum, full_sum, rtol=1e-5, atol=0)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    with torch.no_grad():  # through a PEFT wrapper (random, non-zero adapter) too
        torch.testing.assert_close(labelled_loss(peft, batch), peft(**batch).loss, rtol=1e-5, atol=0)


def test_head_on_labels_has_the_same_gradients(tiny_model_dir, tiny_tokenizer, sample_jsonl):
    from medtune.train.examples import PadCollator, build_examples
    from medtune.train.trainer import labelled_loss

    batch = PadCollator(tiny_tokenizer.pad_token_id)(
        build_examples(_items(sample_jsonl), tiny_tokenizer, "chat", "letter", 512, "answer"))
    grads = []
    for fn in (lambda m: m(**batch).loss, lambda m: labelled_loss(m, batch)):
        model = _model(tiny_model_dir)
        fn(model).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("attn", ["sdpa", "eager", "flex_attention"])
def test_packed_example_loss_equals_its_loss_alone(tiny_model_dir, tiny_tokenizer, sample_jsonl, attn):
    from medtune.train.examples import build_examples, pack_collator
    from medtune.train.trainer import labelled_loss

    feats = build_examples(_items(sample_jsonl), tiny_tokenizer, "chat", "letter_text", 512, "all")
    model = _model(tiny_model_dir, attn)
    packed = pack_collator()(feats)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed  # padding-free
    with torch.no_grad():
        alone = [labelled_loss(model, pack_collator()([f]), num_items_in_batch=1) for f in feats]
        n = (packed["labels"][:, 1:] != -100).sum()
        together = labelled_loss(model, packed, num_items_in_batch=1)
        # per example: the packed row's token losses, summed over each example's span
        starts = [0]
        for f in feats:
            starts.append(starts[-1] + len(f["input_ids"]))
        logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits[0]
    per_token = torch.nn.functional.cross_entropy(logits[:-1], packed["labels"][0, 1:], reduction="none",
                                                  ignore_index=-100)
    for i in range(len(feats)):
        mine = per_token[starts[i]:starts[i + 1] - 1].sum()
        torch.testing.assert_close(mine, alone[i], rtol=1e-5, atol=1e-5)  # no attention across examples
    torch.testing.assert_close(together, sum(alone), rtol=1e-5, atol=1e-5)
    assert int(n) == sum(sum(1 for x in f["labels"][1:] if x != -100) for f in feats)


def test_shuffled_options_move_their_answer_and_keep_positional_ones():
    from medtune.data.schema import MCQItem
    from medtune.train.trainset import shuffle_options

    items = [MCQItem(id=f"q{i}", question="Which?", options=("alpha", "beta", "gamma", "delta"), answer_index=i % 4)
             for i in range(40)]
    fixed = MCQItem(id="f", question="Which?", options=("x", "y", "z", "All of the above"), answer_index=3)
    out = shuffle_options(items + [fixed], seed=0)
    assert out == shuffle_options(items + [fixed], seed=0)  # deterministic
    assert out[-1] == fixed
    for before, after in zip(items, out):
        assert after.answer_text == before.answer_text and sorted(after.options) == sorted(before.options)
    golds = [it.answer_index for it in out[:-1]]
    assert len(set(golds)) == 4 and sum(a.options != b.options for a, b in zip(items, out)) >= 30


def test_selection_split_is_cut_from_training_and_named(tmp_path, tiny_model_dir, sample_jsonl):
    from medtune.train.run import run_train
    from medtune.train.trainset import load_questions

    out = tmp_path / "sel"
    recipe = load_recipe(str(write_recipe(tmp_path, tiny_model_dir, sample_jsonl, out, eval_steps=2)),
                         ["data.selection_size=6"])
    q = load_questions(recipe)
    ids = lambda xs: {x.id for x in xs}  # noqa: E731
    assert len(q.selection) == 6 and len(q.evals) == 8 and len(q.train) == 40 - 8 - 6
    assert not ids(q.selection) & ids(q.evals) and not ids(q.selection) & ids(q.train)
    assert load_questions(recipe).selection == q.selection  # deterministic
    summary = run_train(recipe)
    assert summary["split"]["selection"]["size"] == 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["split"]["selection"]["size"] == 6
    assert manifest["split"]["selection_ids"] == sorted(ids(q.selection))
    # the reported questions were scored twice only: before and after
    state = json.loads((out / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert [h["step"] for h in state["log_history"] if "eval_accuracy" in h] == [2, 4]
    assert sorted(p.name for p in out.iterdir() if (p / "predictions.jsonl").is_file()) == ["baseline", "final"]


def test_baseline_and_final_share_one_scoring_regime(tmp_path, tiny_model_dir, sample_jsonl):
    from medtune.train.run import run_train

    out = tmp_path / "regime"
    summary = run_train(load_recipe(str(write_recipe(tmp_path, tiny_model_dir, sample_jsonl, out))))
    regime = summary["scoring"]
    assert set(regime["final"]) == {"dtype", "autocast", "batch_size", "merged"}
    assert {**regime["baseline"], "merged": True} == regime["final"]  # fp32 weights: the adapter folded in
    assert regime["final"]["autocast"] is False and regime["final"]["dtype"] == "float32"
    base = json.loads((out / "baseline" / "metrics.json").read_text())
    final = json.loads((out / "final" / "metrics.json").read_text())
    assert base["manifest"]["batch_size"] == final["manifest"]["batch_size"] == regime["final"]["batch_size"]
    assert "letters: gold " in (summary.get("letters_line") or "")


def test_second_run_reads_the_tokenized_examples_from_the_cache(tmp_path, tiny_model_dir, sample_jsonl):
    env = {"MEDTUNE_CACHE": str(tmp_path / "cache")}
    lines = []
    for name in ("a", "b"):
        proc = run_cli("train", str(write_recipe(tmp_path, tiny_model_dir, sample_jsonl, tmp_path / name,
                                                 max_steps=1, save_steps=1)), "baseline_eval=false", env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines.append([x for x in proc.stdout.splitlines() if "tokenized examples from the cache" in x])
    assert lines[0] == [] and len(lines[1]) == 1 and lines[1][0].startswith("medtune: 32 tokenized examples")


BLOCKER = textwrap.dedent("""
    from importlib.machinery import PathFinder
    BLOCKED = {"datasets", "gguf", "matplotlib", "tensorboard"}
    _find = PathFinder.find_spec
    def _find_spec(cls, fullname, path=None, target=None):
        if fullname.split(".")[0] in BLOCKED:
            return None  # exactly as if the package were not installed
        return _find(fullname, path, target)
    PathFinder.find_spec = classmethod(_find_spec)
""")



def test_train_needs_only_the_core_packages(tmp_path, tiny_model_dir, sample_jsonl):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    out = tmp_path / "core"
    proc = run_cli("train", str(write_recipe(tmp_path, tiny_model_dir, sample_jsonl, out, max_steps=2)), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and (out / "metrics.json").is_file()
    assert "medtune: tensorboard is not installed, so the TensorBoard log" in proc.stderr
    assert "medtune: matplotlib is not installed, so the curve plot curves.png is skipped" in proc.stderr
    assert not (out / "curves.png").exists()
    check = subprocess.run([sys.executable, "-c", "import datasets"], env={**os.environ, **env},
                           capture_output=True, text=True)
    assert check.returncode != 0 and "No module named 'datasets'" in check.stderr  # the blocker really blocks


def test_lora_on_the_top_layers_stops_the_backward_pass_below_them(tmp_path, tiny_model_dir, sample_jsonl):
    from medtune.errors import MedtuneError
    from medtune.train.methods import adapted_layers, prepare_for_training
    from medtune.backend import select_backend

    assert adapted_layers("top:2", 4) == [2, 3] and adapted_layers([3, 1], 4) == [1, 3] and adapted_layers(None, 4) is None
    for bad in ("top:0", "top:5", "bottom:2", [4], []):
        with pytest.raises(MedtuneError, match="lora.layers"):
            adapted_layers(bad, 4)
    model = _model(tiny_model_dir)
    n = model.config.num_hidden_layers
    recipe = load_recipe(str(write_recipe(tmp_path, tiny_model_dir, sample_jsonl, tmp_path / "top")),
                         ["lora.layers=top:1"])
    model = prepare_for_training(model, recipe, select_backend("cpu"))
    trained = {name.split(".layers.")[1].split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trained == {str(n - 1)}
    seen = {}
    layers = model.base_model.model.model.layers
    for i, layer in enumerate(layers):
        layer.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, (out[0] if isinstance(out, tuple)
                                                                                 else out).requires_grad))
    model.train()
    model(input_ids=torch.tensor([[5, 6, 7, 8]]), labels=torch.tensor([[5, 6, 7, 8]])).loss.backward()
    assert seen == {i: i == n - 1 for i in range(n)}  # nothing below the adapted layer is kept for backward


def test_packing_on_a_gpu_loads_flash_varlen_when_installed_and_flex_attention_otherwise(monkeypatch):
    from types import SimpleNamespace

    import medtune.backend as B
    from medtune.train.methods import attention_for

    def recipe(packing, attn=None):
        return SimpleNamespace(model=SimpleNamespace(attn_implementation=attn), train=SimpleNamespace(packing=packing))

    gpu, rocm, cpu = (SimpleNamespace(kind=k) for k in ("cuda", "rocm", "cpu"))
    for installed, expected in ((True, "flash_attention_2"), (False, "flex_attention")):
        monkeypatch.setattr(B, "have", lambda module, installed=installed: installed and module == "flash_attn")
        assert attention_for(recipe(True), gpu) == attention_for(recipe(True), rocm) == expected
    assert attention_for(recipe(True), cpu) is None  # transformers' sdpa, dense document mask on the CPU
    assert attention_for(recipe(False), gpu) is None
    assert attention_for(recipe(True, "eager"), gpu) == "eager"  # the recipe's own choice wins
