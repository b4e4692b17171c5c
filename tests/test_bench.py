"""`medtune bench train|eval` on a tiny random Llama recipe: the figures are produced, consistent and
written; the speed path changes no prediction. (Speed itself is measured in benchmarks/, not here.)"""

from __future__ import annotations

import json

import yaml

from conftest import run_cli


def _recipe(tmp_path, tiny_model_dir, sample_jsonl, **data):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"model": {"name": str(tiny_model_dir)},
                                    "data": {"train": [str(sample_jsonl)], "eval_size": 8, **data},
                                    "train": {"batch_size": 4, "grad_accum": 2}}))
    return path


def test_bench_train_writes_consistent_figures(tmp_path, tiny_model_dir, sample_jsonl):
    out = tmp_path / "train.json"
    recipe = _recipe(tmp_path, tiny_model_dir, sample_jsonl)
    recipe.write_text(recipe.read_text() + "env:\n  MEDTUNE_BENCH_PROBE: from-the-recipe\n")
    proc = run_cli("bench", "train", str(recipe), "train.packing=true", "--steps", "3", "--warmup", "1",
                   "--out", str(out), "--vs", str(recipe))
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["commit"] and doc["versions"]["torch"] and len(doc["results"]) == 2
    assert doc["separate_processes"] is True  # each recipe's peak memory and env are its own
    assert all(r["env"] == {"MEDTUNE_BENCH_PROBE": "from-the-recipe"} for r in doc["results"])
    r = doc["results"][0]
    assert r["kind"] == "train" and r["steps_timed"] == 3 and r["packing"] is True
    assert r["padding_fraction"] == 0.0
    # tokens/s and samples/s agree with the mean sequence length; step time is the median of 3 timed steps
    assert r["tokens_per_s"] / r["samples_per_s"] == __import__("pytest").approx(r["mean_seq_len"], rel=1e-6)
    assert r["step_s_min"] <= r["step_s_median"] <= r["step_s_max"]
    assert 0 < r["mfu"] < 1 and r["flops_count"]["k"] == 4  # lora over every layer: forward 2N + backward 2N
    assert r["flops_per_token"] == 4 * r["flops_count"]["linear"]
    # the limit was measured in the same process, before and after the timed steps; the fraction is of it
    fp32 = r["matmul_peak"]["float32"]
    assert fp32["before"]["flops_per_s"] > 0 and fp32["after"]["flops_per_s"] > 0
    assert fp32["flops_per_s"] == max(fp32["before"]["flops_per_s"], fp32["after"]["flops_per_s"])
    assert r["fraction_of_peak"]["of_float32_peak"] == __import__("pytest").approx(
        r["tokens_per_s"] * r["flops_per_token"] / fp32["flops_per_s"])
    assert set(doc["ratio"]) == {"tokens_per_s", "samples_per_s"}
    assert "ratio r / r:" in proc.stdout and "tokens/s (non-pad)" in proc.stdout


def test_bench_eval_prefix_cache_keeps_every_prediction(tmp_path, tiny_model_dir, sample_jsonl):
    out = tmp_path / "eval.json"
    proc = run_cli("bench", "eval", str(_recipe(tmp_path, tiny_model_dir, sample_jsonl)), "--data", str(sample_jsonl),
                   "--batch-size", "6", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())["results"][0]
    assert r["questions"] == 40 and r["shared_prefix_tokens"] >= 8
    assert r["identical_predictions"] == 40 and r["max_abs_loglik_difference"] < 1e-4
    assert r["flips_beyond_tolerance"] == 0 and r["tie_tolerance"] == 1e-4  # fp32 on the CPU
    cached, plain = r["prefix_cache"]["processed_tokens"], r["no_prefix_cache"]["processed_tokens"]
    # the shared prefix ran once in the cached run; tokens/s counts what ran, the questions' tokens apart
    assert cached <= plain - 39 * r["shared_prefix_tokens"] and plain <= r["question_tokens"]
    assert r["prefix_cache"]["tokens_per_s"] == __import__("pytest").approx(cached / r["prefix_cache"]["seconds"])
    assert r["prefix_cache"]["questions_per_s"] > 0 and r["no_prefix_cache"]["questions_per_s"] > 0
    assert "identical predictions 40/40" in proc.stdout
    # FLOP/s of the work done (2N a processed token) as a fraction of the matmul rate measured in the process
    n, peak = r["linear_params"], r["matmul_peak"]["float32"]["flops_per_s"]
    for run in ("prefix_cache", "no_prefix_cache"):
        x = r[run]
        assert x["flops"] == 2 * n * x["processed_tokens"]
        assert x["fraction_of_peak"]["of_float32_peak"] == __import__("pytest").approx(x["flops"] / x["seconds"] / peak)
    assert "of the float32 peak" in proc.stdout


def test_bench_unknown_shape_is_a_clear_error(tmp_path, tiny_model_dir, sample_jsonl):
    proc = run_cli("bench", "train", str(_recipe(tmp_path, tiny_model_dir, sample_jsonl)), "--shape", "qwen9")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "qwen9: --shape: unknown shape; shipped shapes: qwen3-1.7b"


def test_fp8_without_an_fp8_gpu_is_a_clear_error(tmp_path, tiny_model_dir, sample_jsonl):
    proc = run_cli("bench", "train", str(_recipe(tmp_path, tiny_model_dir, sample_jsonl)), "train.fp8=true",
                   "--steps", "1", "--warmup", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("medtune: error: train.fp8: fp8 training needs an FP8-capable GPU (H100, MI300X); "
                                   "set train.fp8=false")


def test_liger_only_on_a_gpu_with_the_package(monkeypatch):
    import importlib.util
    from types import SimpleNamespace

    from medtune.train.methods import liger_available

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "liger_kernel" else None)
    assert liger_available(SimpleNamespace(kind="rocm")) and liger_available(SimpleNamespace(kind="cuda"))
    assert not liger_available(SimpleNamespace(kind="cpu"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert not liger_available(SimpleNamespace(kind="cuda"))


def test_bench_eval_scores_the_recipes_held_out_questions_against_a_recorded_eval(tmp_path, tiny_model_dir,
                                                                                   sample_jsonl):
    recorded = tmp_path / "recorded"
    proc = run_cli("eval", "--model", str(tiny_model_dir), "--data", str(sample_jsonl), "--out", str(recorded))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "eval.json"
    proc = run_cli("bench", "eval", str(_recipe(tmp_path, tiny_model_dir, sample_jsonl)), "--no-compare",
                   "--reference", str(recorded), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    r = doc["results"][0]
    assert doc["processes"] == 1
    assert r["questions"] == 8 and r["questions_from"] == "the recipe's eval questions"  # data.eval_size: 8
    assert r["reference"]["compared"] == 8 and r["reference"]["identical_predictions"] == 8
    assert "no_prefix_cache" not in r and r["processes"] == 1
    assert f"identical to {recorded / 'predictions.jsonl'}: 8/8" in proc.stdout


def test_bench_eval_bad_reference_is_one_line(tmp_path, tiny_model_dir, sample_jsonl):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"id": "a", "predicted": "B"}\n{"id": "b"}\n')
    proc = run_cli("bench", "eval", str(_recipe(tmp_path, tiny_model_dir, sample_jsonl)), "--reference", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{bad}:2: --reference: not a medtune predictions row (needs id and predicted)"


def test_overrides_may_follow_options(tmp_path, tiny_model_dir, sample_jsonl):
    recipe = str(_recipe(tmp_path, tiny_model_dir, sample_jsonl))
    proc = run_cli("bench", "train", recipe, "--steps", "1", "--warmup", "0", "train.fp8=true")
    assert proc.returncode == 2  # the override after --steps reached the recipe
    assert proc.stderr.strip().startswith("medtune: error: train.fp8: fp8 training needs an FP8-capable GPU")
    proc = run_cli("bench", "train", recipe, "--steps", "1", "--bogus")
    assert proc.returncode == 2 and proc.stderr.strip().endswith("error: unrecognized arguments: --bogus")


SHIPPED_TOKENIZER = __import__("conftest").ROOT / "medtune" / "resources" / "tokenizers" / "qwen2.5"


def test_any_folder_with_tokenizer_files_is_a_tokenizer(tmp_path, tiny_tokenizer):
    import pytest

    from medtune.errors import MedtuneError
    from medtune.models import resolve_model, resolve_tokenizer

    folder = tmp_path / "tok"
    tiny_tokenizer.save_pretrained(folder)  # tokenizer files, no config.json
    assert resolve_tokenizer(str(folder)).path == str(folder)
    assert resolve_tokenizer("qwen2.5").path == str(SHIPPED_TOKENIZER) == resolve_tokenizer("qwen3").path
    with pytest.raises(MedtuneError) as err:
        resolve_model(str(folder))
    assert str(err.value) == (f"{folder}: --model: this folder has no config.json, so it is not a Hugging Face "
                              "model folder (it has tokenizer files: pass it as --tokenizer)")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MedtuneError) as err:
        resolve_tokenizer(str(empty))
    assert str(err.value) == (f"{empty}: --tokenizer: no tokenizer files here (tokenizer.json, "
                              "tokenizer_config.json, tokenizer.model, vocab.json, ...)")
    with pytest.raises(MedtuneError, match=r"not a shipped tokenizer \(qwen2.5, qwen3\).*did you mean 'qwen3'"):
        resolve_tokenizer("qwen4")


def test_the_shipped_tokenizer_has_its_licence_and_fits_the_qwen3_shape():
    from medtune.bench.common import shape_config
    from medtune.models import load_tokenizer, resolve_tokenizer

    notice = (SHIPPED_TOKENIZER / "NOTICE.md").read_text()
    assert "Apache License, Version 2.0" in notice and "Alibaba Cloud" in notice
    tok = load_tokenizer(resolve_tokenizer(str(SHIPPED_TOKENIZER)))
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [151643, 151644, 151645]
    assert len(tok) <= shape_config("qwen3-1.7b").vocab_size == 151936
    assert tok("Which nerve supplies the deltoid?")["input_ids"] == [23085, 30915, 16720, 279, 96250, 588, 30]


def test_qwen3_shape_with_the_shipped_tokenizer_sets_up_offline(monkeypatch):
    """What `medtune bench train --shape qwen3-1.7b --tokenizer <shipped folder>` does before its first step,
    with HF_HUB_OFFLINE=1 (conftest) and the 1.7B model built on the meta device (no memory)."""
    import os

    import torch

    from medtune.bench import common
    from medtune.train.recipe import load_recipe

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    built = {}
    original = common.shape_model

    def on_meta(shape, dtype, device="cpu", seed=0, **kw):
        built.update(shape=shape, dtype=dtype, device=device)
        return original(shape, dtype, "meta", seed, **kw)

    monkeypatch.setattr(common, "shape_model", on_meta)
    recipe = load_recipe("qwen3-1.7b-medmcqa-lora", ["data.train=[medmcqa-dev]", "data.eval=[]",
                                                     "train.precision=fp32"])
    s = common.setup(recipe, "qwen3-1.7b", str(SHIPPED_TOKENIZER), "cpu", for_training=True)
    assert built == {"shape": "qwen3-1.7b", "dtype": torch.float32, "device": "cpu"}
    assert s["model"].config.num_hidden_layers == 28 and s["tokenizer_name"] == str(SHIPPED_TOKENIZER)
    assert s["template"] == "chat" and s["model_name"] == "qwen3-1.7b shape, random weights"


def test_peak_rate_is_the_best_of_several_products_and_cached():
    import torch

    from medtune.bench import common

    rate = common.matmul_rate("cpu", torch.float32, n=256, repeats=2)
    assert rate > 0 and common.matmul_rate("cpu", torch.float32, n=256, repeats=2) == rate  # measured once
    assert common.fp8_matmul_rate("cpu") is None
    assert common.peak_rate("cpu", "fp32", fp8=True)[1].startswith("float32 matmul")


def test_agreement_counts_flips_only_beyond_the_tie_tolerance():
    from medtune.bench.common import TIE_TOLERANCE, agreement

    ref = [[-1.0, -1.03, -3.0], [-2.0, -1.0, -1.5], [-0.5, -0.9, -2.0]]
    oth = [[-1.04, -1.02, -3.0], [-2.0, -1.0, -1.5], [-0.9, -0.5, -2.0]]  # a near-tie flips, a clear one too
    a = agreement(ref, oth, TIE_TOLERANCE["bfloat16"])
    assert (a["identical"], a["flips_beyond_tolerance"]) == (1, 1)
    assert a["agreement_with_tolerance"] == 2 / 3 and round(a["max_abs_loglik_difference"], 6) == 0.4
    assert agreement(ref, oth, 0.5)["flips_beyond_tolerance"] == 0


def test_parity_without_a_gpu_compares_the_cpu_with_itself(sample_jsonl, tiny_model_dir, tmp_path):
    import json

    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    shape = tmp_path / "shape"
    shape.mkdir()
    (shape / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "parity.json"
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "medtune.bench.parity", "--shape", str(shape), "--layers", "0",
                           "--tokenizer", str(tiny_model_dir), "--data", str(sample_jsonl), "--limit", "12",
                           "--batch-size", "4", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())["results"][0]
    assert r["what"].startswith("no GPU here: CPU fp32 (batch 4, prefix cache) against CPU fp32 and bf16 (batch 2")
    assert r["questions"] == 12 and set(r["comparisons"]) == {"float32", "bfloat16"}
    f32 = r["comparisons"]["float32"]
    assert f32["identical"] == 12 and f32["met"] and f32["max_abs_loglik_difference"] < 1e-4
    assert "float32   identical 12/12" in proc.stdout


def test_bench_parity_takes_no_recipe():
    from conftest import run_cli

    proc = run_cli("bench", "parity", "demo-cpu")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("medtune: error: bench parity: parity takes no recipe: it scores a seeded random "
                                   "model (--shape, --layers)")
