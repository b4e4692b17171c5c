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
    proc = run_cli("bench", "train", str(recipe), "train.packing=true", "--steps", "3", "--warmup", "1",
                   "--out", str(out), "--vs", str(recipe))
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["commit"] and doc["versions"]["torch"] and len(doc["results"]) == 2
    r = doc["results"][0]
    assert r["kind"] == "train" and r["steps_timed"] == 3 and r["packing"] is True
    assert r["padding_fraction"] == 0.0
    # tokens/s and samples/s agree with the mean sequence length; step time is the median of 3 timed steps
    assert r["tokens_per_s"] / r["samples_per_s"] == __import__("pytest").approx(r["mean_seq_len"], rel=1e-6)
    assert r["step_s_min"] <= r["step_s_median"] <= r["step_s_max"]
    assert 0 < r["mfu"] < 1 and r["flops_formula"] == "4*N + 4*2*layers*s*d_attn"
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
    assert r["prefix_cache"]["questions_per_s"] > 0 and r["no_prefix_cache"]["questions_per_s"] > 0
    assert "identical predictions 40/40" in proc.stdout


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
