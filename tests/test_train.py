"""Fine-tuning on a tiny random Llama (real architecture, 2 layers): outputs, PEFT loading, merge,
kill -9 and resume, the NaN guard, packing, loss masking."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, run_cli, write_recipe
from medtune.train.recipe import load_recipe


# this file's runs: LoRA dropout on, 6 steps unless a test says otherwise
_recipe_file = functools.partial(write_recipe, dropout=0.1, max_steps=6)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir, sample_jsonl):
    tmp = tmp_path_factory.mktemp("train")
    out = tmp / "run"
    proc = run_cli("train", str(_recipe_file(tmp, tiny_model_dir, sample_jsonl, out)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_run_folder_contents(lora_run):
    out, proc = lora_run
    for rel in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "adapter/tokenizer.json",
                "recipe.yaml", "manifest.json", "metrics.json", "compare.json", "curves.png",
                "baseline/metrics.json", "final/metrics.json", "final/predictions.jsonl"):
        assert (out / rel).is_file(), rel
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert all((c / "medtune-complete.json").is_file() for c in (out / "checkpoints").glob("checkpoint-*"))
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["steps"] == 6 and summary["eval_questions"] == 8 and summary["train_questions"] == 32
    assert summary["compare"]["rows"][0]["mcnemar"]["test"].startswith("exact")
    assert "McNemar p" in proc.stdout and "before training:" in proc.stdout
    assert yaml.safe_load((out / "recipe.yaml").read_text())["train"]["max_steps"] == 6


def _recorded(out: Path) -> tuple[list, list[dict]]:
    """The run's eval questions (re-derived from its recipe) and its final predictions."""
    from medtune.data import load_benchmark
    from medtune.data.split import split_items

    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    items, _ = load_benchmark(recipe["data"]["train"])
    _, evals, _ = split_items(items, eval_size=recipe["data"]["eval_size"], seed=recipe["data"]["split_seed"])
    rows = [json.loads(x) for x in (out / "final" / "predictions.jsonl").read_text().splitlines()]
    assert [e.id for e in evals] == [r["id"] for r in rows]
    return evals, rows


def _assert_scores_match(model, tokenizer, evals, rows, tol):
    from medtune.eval.run import score_items
    from medtune.eval.scoring import softmax

    scores, _ = score_items(model.eval(), tokenizer, evals, "letter", "chat", batch_size=4, device="cpu")
    for s, r in zip(scores["letter"], rows):
        assert softmax(s) == pytest.approx(r["probabilities"], abs=tol)


def test_adapter_loads_with_plain_peft_and_scores_as_recorded(lora_run, tiny_model_dir, tiny_tokenizer):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out, _ = lora_run
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(out / "adapter"))
    _assert_scores_match(model, tiny_tokenizer, *_recorded(out), tol=1e-5)


def test_export_merge_scores_the_same(lora_run, tmp_path, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    out, _ = lora_run
    merged = tmp_path / "merged"
    proc = run_cli("export", str(out), "--merge", "--out", str(merged))
    assert proc.returncode == 0, proc.stderr
    assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(merged)  # plain transformers, no PEFT
    _assert_scores_match(model, tiny_tokenizer, *_recorded(out), tol=1e-4)


def _adapter_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_kill_9_then_resume_gives_the_same_adapter(tmp_path, tiny_model_dir, sample_jsonl):
    steps = dict(max_steps=24, save_steps=4, batch_size=2, grad_accum=2)
    ref_out, cut_out = tmp_path / "uninterrupted", tmp_path / "interrupted"
    proc = run_cli("train", str(_recipe_file(tmp_path, tiny_model_dir, sample_jsonl, ref_out, **steps)),
                   "baseline_eval=false")
    assert proc.returncode == 0, proc.stderr[-2000:]

    recipe = _recipe_file(tmp_path, tiny_model_dir, sample_jsonl, cut_out, **steps)
    child = subprocess.Popen([sys.executable, "-m", "medtune", "train", str(recipe), "baseline_eval=false"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    marker = cut_out / "checkpoints" / "checkpoint-8" / "medtune-complete.json"
    deadline = time.time() + 300
    while not marker.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (cut_out / "adapter").exists()  # it died before finishing
    done = sorted(int(p.name.split("-")[1]) for p in (cut_out / "checkpoints").glob("checkpoint-*"))
    assert 8 <= max(done) < 24

    proc = run_cli("train", str(recipe), "baseline_eval=false", "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming from" in proc.stdout
    a, b = _adapter_tensors(ref_out / "adapter"), _adapter_tensors(cut_out / "adapter")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert json.loads((cut_out / "metrics.json").read_text())["steps"] == 24


def test_resume_refuses_another_recipe(lora_run):
    out, _ = lora_run
    proc = run_cli("train", str(out / "recipe.yaml"), "train.lr=0.5", "--resume")
    assert proc.returncode == 2
    assert "was made with another recipe (differs in: train)" in proc.stderr


def test_nan_guard_stops_and_keeps_the_last_checkpoint(tmp_path, tiny_model_dir, sample_jsonl, monkeypatch,
                                                        capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from medtune.train import trainer as T
    from medtune.train.run import run_train

    original = T.MedtuneTrainer.compute_loss

    def poisoned(self, model, inputs, *args, **kwargs):
        loss = original(self, model, inputs, *args, **kwargs)
        if self.state.global_step == 3:  # the 4th optimizer step
            return loss * float("inf") if not isinstance(loss, tuple) else loss
        return loss

    monkeypatch.setattr(T.MedtuneTrainer, "compute_loss", poisoned)
    out = tmp_path / "nan"
    recipe = load_recipe(str(_recipe_file(tmp_path, tiny_model_dir, sample_jsonl, out, max_steps=8)),
                         ["baseline_eval=false"])
    with pytest.raises(T.NonFiniteLoss) as info:
        run_train(recipe)
    ckpt = out / "checkpoints" / "checkpoint-2"
    assert str(info.value) == (f"step 4: the loss is inf; training stopped before a checkpoint of these weights "
                               f"was written and the last complete checkpoint, {ckpt}, is intact (continue with "
                               f"--resume after fixing the cause). Lower train.lr, or check the data for extreme "
                               f"lengths.")
    assert not (out / "checkpoints" / "checkpoint-4").exists()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    PeftModel.from_pretrained(base, str(ckpt))  # the last good checkpoint loads


def test_nan_guard_reads_the_logged_loss_not_every_step(tmp_path, tiny_model_dir, sample_jsonl, monkeypatch):
    """The guard has no per-step sync: a loss poisoned at step 3 is seen when the loss next reaches the host,
    here forced by the checkpoint due at step 4 (logging every 5 steps), so checkpoint-4 is never written."""
    import torch

    from medtune.train import trainer as T
    from medtune.train.run import run_train

    original = T.MedtuneTrainer.compute_loss
    synced = []
    item = torch.Tensor.item

    training = []

    def counting_item(self):
        if training:
            import traceback

            where = "".join(traceback.format_stack(limit=4)[:-1])
            if "torch/optim" not in where:  # AdamW's step counters live on the host: no device sync
                synced.append(where)
        return item(self)

    def poisoned(self, model, inputs, *args, **kwargs):
        training.append(1)  # count host reads from the first training step on
        loss = original(self, model, inputs, *args, **kwargs)
        return loss * float("nan") if self.state.global_step == 2 else loss

    monkeypatch.setattr(T.MedtuneTrainer, "compute_loss", poisoned)
    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    out = tmp_path / "nan-late"
    recipe = load_recipe(str(_recipe_file(tmp_path, tiny_model_dir, sample_jsonl, out, max_steps=8,
                                          logging_steps=5)), ["baseline_eval=false"])
    with pytest.raises(T.NonFiniteLoss) as info:
        run_train(recipe)
    assert str(info.value).startswith("step 4: the loss is nan; training stopped before a checkpoint")
    assert (out / "checkpoints" / "checkpoint-2" / "medtune-complete.json").is_file()
    assert not (out / "checkpoints" / "checkpoint-4").exists()
    assert len(synced) <= 4, synced  # the loss and grad norm read at the two forced logs, not once a step


def test_loss_is_on_the_answer_tokens_only(tiny_tokenizer, sample_jsonl):
    from medtune.data import load_benchmark
    from medtune.data.prompts import render
    from medtune.eval.scoring import build_request
    from medtune.train.examples import build_example

    items, _ = load_benchmark(str(sample_jsonl))
    item = items[1]
    ex = build_example(item, tiny_tokenizer, "chat", "letter", 512, "answer")
    learned = [t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != -100]
    req = build_request(tiny_tokenizer, render(item, "chat", tiny_tokenizer).prompt, "ABCDE"[: len(item.options)])
    # the learned tokens are exactly what the letter scorer reads for the gold option, then EOS
    assert learned == req.continuations[item.answer_index] + [tiny_tokenizer.eos_token_id]
    whole = build_example(item, tiny_tokenizer, "chat", "letter", 512, "all")
    assert whole["labels"] == whole["input_ids"]
    short = build_example(item, tiny_tokenizer, "chat", "letter", 16, "answer")
    assert len(short["input_ids"]) == 16 and short["input_ids"][-len(learned):] == learned


def test_packing_gives_the_same_loss_as_padding(tiny_model_dir, tiny_tokenizer, sample_jsonl):
    from transformers import AutoModelForCausalLM

    from medtune.data import load_benchmark
    from medtune.train.examples import PadCollator, build_examples, pack_collator

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    items, _ = load_benchmark(str(sample_jsonl))
    feats = build_examples(items[:5], tiny_tokenizer, "chat", "letter_text", 512, "all")
    padded = PadCollator(tiny_tokenizer.pad_token_id)(feats)
    packed = pack_collator()(feats)
    model.config.use_cache = False  # as run_train sets it: packed batches are recognised only without a cache
    with torch.no_grad():
        a = model(**padded).loss
        b = model(input_ids=packed["input_ids"], labels=packed["labels"], position_ids=packed["position_ids"]).loss
        per_example = torch.cat([model(input_ids=torch.tensor([f["input_ids"]])).logits[0] for f in feats])
        packed_logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits[0]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(packed_logits, per_example, rtol=1e-4, atol=1e-5)  # no attention across examples


def test_recipe_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: lora\nmodel:\n  nme: x\ntrain:\n  lr: fast\n")
    proc = run_cli("train", str(bad), "train.epoch=2", "method=lorra")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    msg = proc.stderr.strip()
    assert msg.startswith("medtune: error: 4 problems in the recipe: ")
    assert f"{bad}:3: model.nme: unknown key (did you mean 'name'?)" in msg
    assert f"{bad}:5: train.lr: expected a number, got 'fast'" in msg
    assert "command line: train.epoch: unknown key (did you mean 'epochs'?)" in msg
    assert "command line: method: 'lorra' is not one of lora, dora, full, qlora, multiple_choice, grpo (did you mean 'lora'?)" in msg


def test_a_recipe_with_a_key_twice_is_refused_at_the_second(tmp_path):
    bad = tmp_path / "twice.yaml"
    bad.write_text("method: lora\ntrain:\n  lr: 0.001\n  epochs: 1\n  lr: 0.1\n")
    proc = run_cli("train", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"{bad}:5: train.lr: duplicate key (first at line 3); keep one"


def test_every_shipped_recipe_validates():
    recipes = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "accelerate" not in p.parts)
    assert len(recipes) >= 4
    for path in recipes:
        recipe = load_recipe(str(path))
        assert recipe.output_dir
        header = path.read_text().splitlines()[0]
        assert header.startswith("# medtune train configs/"), path  # each recipe says how to run it


def test_accelerate_configs_parse_and_launch_medtune():
    from accelerate.commands.config.config_args import load_config_from_file

    found = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))
    assert [p.stem for p in found] == ["ddp", "deepspeed-zero2", "deepspeed-zero3", "fsdp"]
    kinds = {p.stem: load_config_from_file(str(p)).distributed_type.value for p in found}
    assert kinds == {"ddp": "MULTI_GPU", "deepspeed-zero2": "DEEPSPEED", "deepspeed-zero3": "DEEPSPEED",
                     "fsdp": "FSDP"}
    for p in found:
        assert "accelerate launch --config_file configs/accelerate/" in p.read_text()


def test_qlora_without_a_gpu_is_a_clear_error(tmp_path, tiny_model_dir, sample_jsonl):
    proc = run_cli("train", str(_recipe_file(tmp_path, tiny_model_dir, sample_jsonl, tmp_path / "q")),
                   "method=qlora")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("medtune: error: method: qlora needs a CUDA or ROCm GPU with bitsandbytes; "
                                   "on this machine (cpu) use method=lora")


def test_encoder_multiple_choice_recipe(tmp_path):
    """The embedded MiniLM (real weights) with a new multiple-choice head: trains, saves, scores."""
    out = tmp_path / "mc"
    proc = run_cli("train", "minilm-medmcqa-mc", f"output_dir={out}", "data.eval_size=40", "data.max_train=48",
                   "data.selection_size=24",
                   "train.max_steps=3", "train.batch_size=16", "train.save_steps=3", "train.eval_steps=3",
                   "data.max_length=64")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "model" / "model.safetensors").is_file() and (out / "final" / "metrics.json").is_file()
    final = json.loads((out / "final" / "metrics.json").read_text())
    assert set(final["results"]) == {"choice"} and final["n_questions"] == 40
    assert final["confidence"]["fitted_on"] == {"source": "training run selection split", "n": 24,
                                                "ids": final["confidence"]["fitted_on"]["ids"]}
    state = json.loads((out / "checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())
    during = [h["eval_accuracy"] for h in state["log_history"] if "eval_accuracy" in h]
    assert len(during) == 1 and during[0] in [k / 24 for k in range(25)]  # on the 24 selection questions
    rows = [json.loads(x) for x in (out / "final" / "predictions.jsonl").read_text().splitlines()]
    assert all(len(r["probabilities"]) == 4 and abs(sum(r["probabilities"]) - 1) < 1e-4 for r in rows)
    # the saved model, loaded again by `medtune eval` on the same held-out split, gives the same numbers
    split = run_cli("data", "split", "medmcqa-dev", "--eval-size", "40", "--out", str(tmp_path / "split"))
    assert split.returncode == 0, split.stderr
    again = run_cli("eval", "--model", str(out / "model"), "--data", str(tmp_path / "split" / "eval.jsonl"),
                    "--out", str(tmp_path / "e"))
    assert again.returncode == 0, again.stderr[-2000:]
    rows2 = [json.loads(x) for x in (tmp_path / "e" / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows2] == [r["id"] for r in rows]
    for a, b in zip(rows, rows2):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)


def test_encoder_pads_questions_with_fewer_options(tmp_path):
    from medtune.backend import select_backend
    from medtune.data.schema import MCQItem
    from medtune.models import load_encoder, load_tokenizer, resolve_model
    from medtune.eval.choice import score_items_mc

    ref = resolve_model("minilm-l6")
    model, tok = load_encoder(ref, select_backend("cpu")), load_tokenizer(ref)
    three = MCQItem(id="a", question="Which vitamin deficiency causes scurvy?", options=("C", "D", "K"),
                    answer_index=0)
    five = MCQItem(id="b", question="Which is a loop diuretic?",
                   options=("furosemide", "spironolactone", "mannitol", "acetazolamide", "amiloride"),
                   answer_index=0)
    together = score_items_mc(model, tok, [three, five], batch_size=2, device="cpu")
    alone = score_items_mc(model, tok, [three], batch_size=1, device="cpu")
    assert len(together[0]) == 3 and len(together[1]) == 5
    assert together[0] == pytest.approx(alone[0], abs=1e-5)  # padding options change nothing


def test_demo_runs_end_to_end_small(tmp_path):
    """The README's main command, shrunk by overrides so that the test stays short."""
    out = tmp_path / "demo"
    proc = run_cli("demo", f"output_dir={out}", "data.max_train=16", "data.max_eval=12", "train.max_steps=2",
                   "train.save_steps=2", "train.batch_size=4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "before training:" in proc.stdout and "after training:" in proc.stdout
    assert "McNemar p" in proc.stdout and "pipeline check, not a clinical result" in proc.stdout
    assert "; selection bias (RStd) " in proc.stdout and "Letters answered: before A " in proc.stdout
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((out / "metrics.json").read_text())["eval_questions"] == 12
    assert json.loads((out / ".medtune").read_text()) == {"made_by": "medtune demo"}  # a later demo may replace it


@pytest.mark.parametrize("method,saved,ckpt", [("dora", "adapter", False), ("full", "model", True)])
def test_other_methods_train_and_keep_the_best_checkpoint(tmp_path, tiny_model_dir, sample_jsonl, method, saved,
                                                          ckpt):
    from medtune.train.run import run_train

    out = tmp_path / method
    recipe = load_recipe(str(_recipe_file(tmp_path, tiny_model_dir, sample_jsonl, out, max_steps=6, eval_steps=2,
                                          save_steps=2)), [f"method={method}", "baseline_eval=false",
                                                           f"model.gradient_checkpointing={str(ckpt).lower()}"])
    summary = run_train(recipe)
    assert (out / saved / "model.safetensors" if saved == "model" else out / saved / "adapter_model.safetensors").is_file()
    if method == "dora":
        cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
        assert cfg["use_dora"] is True
    else:
        assert summary["trainable_parameters"] == summary["total_parameters"]
    state = json.loads((out / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    accs = {h["step"]: h["eval_accuracy"] for h in state["log_history"] if "eval_accuracy" in h}
    assert sorted(accs) == [2, 4, 6]
    best_step = max(sorted(accs), key=lambda s: accs[s])  # ties: the earliest
    assert summary["best_checkpoint"].endswith(f"checkpoint-{best_step}")
    assert summary["split"]["selection"]["size"] > 0  # accuracy during training is on the selection split
    conf = json.loads((out / "final" / "metrics.json").read_text())["confidence"]  # and the temperature
    assert conf["fitted_on"]["n"] == summary["split"]["selection"]["size"] and conf["temperature"] > 0
    from safetensors.torch import load_file

    name = "model.safetensors" if saved == "model" else "adapter_model.safetensors"
    kept, best = load_file(str(out / saved / name)), load_file(str(Path(summary["best_checkpoint"]) / name))
    assert kept.keys() == best.keys() and all(torch.equal(kept[k], best[k]) for k in kept)  # the best was kept


def test_inference_folds_the_adapter_into_the_weights_and_scores_the_same(lora_run, tiny_model_dir, tiny_tokenizer):
    from medtune.backend import select_backend
    from medtune.models import load_causal_lm, resolve_model

    out, _ = lora_run
    model = load_causal_lm(resolve_model(str(tiny_model_dir)), select_backend("cpu"), adapter=str(out / "adapter"))
    lora_layers = [m for m in model.modules() if hasattr(m, "merged") and hasattr(m, "lora_A")]
    assert lora_layers and all(m.merged for m in lora_layers)  # the forward pass skips the adapter matmuls
    _assert_scores_match(model, tiny_tokenizer, *_recorded(out), tol=1e-5)
    model.unmerge_adapter()  # still a PeftModel: attached again, same scores
    assert not any(m.merged for m in lora_layers)
    _assert_scores_match(model, tiny_tokenizer, *_recorded(out), tol=1e-5)
