"""method grpo: the generation-backend choice, recipe checks, the prompt dataset, the NaN guard, starting
from an SFT adapter (tiny random Llama), and the CPU smoke recipe end to end (embedded SmolLM2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from medtune.errors import MedtuneError
from medtune.train import grpo
from medtune.train.grpo import GrpoArgs, generation_backend, grpo_problems

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "medtune" / "configs" / "grpo-cpu-smoke.yaml"
GPU_RECIPE = ROOT / "medtune" / "configs" / "qwen3-1.7b-medmcqa-grpo.yaml"


def load(path: Path, overrides: list[str]):
    """The recipe through medtune's loader (its `grpo:` section is GrpoArgs)."""
    from medtune.train.recipe import load_recipe

    return load_recipe(str(path), overrides)


def tiny_recipe(tmp_path: Path, model_dir: Path, data: Path, **grpo_keys) -> Path:
    recipe = {"method": "grpo", "output_dir": str(tmp_path / "run"), "model": {"name": str(model_dir)},
              "data": {"train": [str(data)], "eval_size": 4, "max_train": 8},
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
              "train": {"max_steps": 1, "batch_size": 4, "lr": 1e-3, "warmup_ratio": 0.0, "save_steps": 1,
                        "logging_steps": 1, "precision": "fp32"},
              "grpo": {"num_generations": 2, "max_completion_length": 4, "eval_max_new_tokens": 4, **grpo_keys}}
    path = tmp_path / "grpo.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("kind,vllm,requested,choice,reason", [
    ("cpu", True, "auto", "hf", "HF generate: vLLM needs a CUDA or ROCm GPU (cpu here)"),
    ("mps", False, "auto", "hf", "HF generate: vLLM needs a CUDA or ROCm GPU (mps here)"),
    ("cuda", False, "auto", "hf", "HF generate: vLLM is not installed (pip install vllm for faster sampling)"),
    ("cuda", True, "auto", "vllm", "vLLM in TRL's colocate mode, sharing the training GPU"),
    ("rocm", True, "auto", "vllm", "vLLM in TRL's colocate mode, sharing the training GPU (never server mode on "
                                   "ROCm: GRPO + vLLM server hangs on MI300X, see docs/grpo.md)"),
    ("rocm", False, "auto", "hf", "HF generate: vLLM is not installed (pip install vllm for faster sampling)"),
    ("cuda", True, "hf", "hf", "HF generate, as the recipe asks (grpo.generation_backend=hf)"),
])
def test_generation_backend(kind, vllm, requested, choice, reason):
    assert generation_backend(kind, vllm, requested) == (choice, reason)


def test_generation_backend_vllm_asked_but_unusable():
    with pytest.raises(MedtuneError, match="grpo.generation_backend: vLLM generation needs a CUDA or ROCm GPU"):
        generation_backend("cpu", True, "vllm")
    with pytest.raises(MedtuneError, match=r"vLLM is not installed \(pip install vllm\)"):
        generation_backend("cuda", False, "vllm")


def test_grpo_problems(tmp_path):
    assert grpo_problems(GrpoArgs(), 8, 1) == []
    got = dict(grpo_problems(GrpoArgs(num_generations=3, generation_backend="vlm", from_adapter=str(tmp_path)), 8, 1))
    assert got["train.batch_size"].startswith("train.batch_size x train.grad_accum (8 x 1) counts completions")
    assert got["grpo.generation_backend"] == "'vlm' is not one of auto, hf, vllm"
    assert got["grpo.from_adapter"] == f"{tmp_path}: no adapter_config.json, so not a PEFT adapter folder"
    assert dict(grpo_problems(GrpoArgs(num_generations=1), 8, 1))["grpo.num_generations"].startswith("a group needs")


def test_missing_trl_is_one_line_naming_the_extra(monkeypatch, tmp_path, tiny_model_dir, sample_jsonl):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real(name, *a))
    recipe = load(tiny_recipe(tmp_path, tiny_model_dir, sample_jsonl), [])
    with pytest.raises(MedtuneError) as err:
        grpo.run_grpo(recipe)
    assert str(err.value) == "method: method grpo needs TRL: pip install 'medtune[rl]' (or pip install 'trl>=1.0')"
    assert not (tmp_path / "run").exists()


def test_dataset_uses_the_generative_prompt_and_counts_long_prompts(tiny_tokenizer, sample_jsonl):
    from medtune.data.sources import load_benchmark
    from medtune.eval.generate import generative_prompt

    items, _ = load_benchmark([str(sample_jsonl)])
    items = items[:6]
    lengths = [len(tiny_tokenizer(generative_prompt(it, tiny_tokenizer), add_special_tokens=False)["input_ids"])
               for it in items]
    cap = sorted(lengths)[2]
    ds, too_long = grpo.grpo_dataset(items, tiny_tokenizer, GrpoArgs(max_prompt_length=cap))
    assert too_long == sum(n > cap for n in lengths) and len(ds) == 6 - too_long
    kept = [it for it, n in zip(items, lengths) if n <= cap]
    assert ds["prompt"] == [generative_prompt(it, tiny_tokenizer) for it in kept]
    assert ds["answer_index"] == [it.answer_index for it in kept]
    assert ds["options"] == [list(it.options) for it in kept]
    with pytest.raises(MedtuneError, match="every training prompt is longer than grpo.max_prompt_length"):
        grpo.grpo_dataset(items, tiny_tokenizer, GrpoArgs(max_prompt_length=1))


def test_nan_loss_stops_the_run(monkeypatch, tmp_path, tiny_model_dir, sample_jsonl):
    from trl import GRPOTrainer

    from medtune.train.trainer import NonFiniteLoss

    real = GRPOTrainer.compute_loss
    monkeypatch.setattr(GRPOTrainer, "compute_loss", lambda self, *a, **k: real(self, *a, **k) * float("nan"))
    recipe = load(tiny_recipe(tmp_path, tiny_model_dir, sample_jsonl), ["baseline_eval=false"])
    with pytest.raises(NonFiniteLoss, match="step 1: the loss is nan; training stopped before "):
        grpo.run_grpo(recipe)
    assert not (tmp_path / "run" / "adapter").exists()


def test_grpo_from_an_sft_adapter(monkeypatch, tmp_path, tiny_model_dir, sample_jsonl):
    """An SFT adapter is trained further; the saved adapter is the trained one alone (no TRL reference
    copy) and differs from where it started. (A random model writes no answers, so every reward would be 0
    and nothing would move: here the reward alternates 1, 0 within each group.)"""
    import torch

    from medtune.train import rewards

    class Alternating(rewards.AnswerReward):
        def __call__(self, prompts: list, completions: list, **_: object) -> list[float]:
            return [float(i % 2) for i in range(len(completions))]

    monkeypatch.setattr(rewards, "reward_functions", lambda weight: ([Alternating()], [1.0]))
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    sft = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                         LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    sft.save_pretrained(tmp_path / "sft")
    recipe = load(tiny_recipe(tmp_path, tiny_model_dir, sample_jsonl, from_adapter=str(tmp_path / "sft")), [])
    summary = grpo.run_grpo(recipe)
    assert summary["from_adapter"] == str(tmp_path / "sft") and summary["steps"] == 1
    assert summary["log"][0]["zero_std_fraction"] == 0.0 and summary["log"][0]["reward"] == 0.5
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "adapter").iterdir() if p.is_dir()) == []  # no ref/ sub-adapter
    before = load_file(tmp_path / "sft" / "adapter_model.safetensors")
    after = load_file(run / "adapter" / "adapter_model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert json.loads((run / "baseline" / "metrics.json").read_text())["primary"] == "generate"


def test_cpu_smoke_recipe_end_to_end(tmp_path):
    """The shipped CPU smoke recipe: reward logged at every step, an adapter plain PEFT loads, generative
    metrics before and after, McNemar's test, the curves and TensorBoard events."""
    pytest.importorskip("trl", reason="the rl extra is not installed (the GPU-image leg has no trl)")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from medtune.models import resolve_model

    recipe = load(SMOKE, [f"output_dir={tmp_path / 'run'}"])
    summary = grpo.run_grpo(recipe)
    run = tmp_path / "run"
    steps = recipe.train.max_steps
    assert summary["steps"] == steps
    assert [s["step"] for s in summary["log"]] == list(range(1, steps + 1))
    for s in summary["log"]:
        assert {"reward", "accuracy", "unparseable_rate", "mean_length"} <= s.keys()
        assert 0.0 <= s["accuracy"] <= 1.0 and 0.0 <= s["unparseable_rate"] <= 1.0 and not math.isnan(s["reward"])
    n = steps * recipe.train.batch_size
    assert summary["rewards"]["completions"] == n
    assert summary["rewards"]["weights"] == {"answer": 1.0, "format": 0.1}
    for phase in ("baseline", "final"):
        m = json.loads((run / phase / "metrics.json").read_text())
        r = m["results"]["generate"]
        assert m["primary"] == "generate" and r["max_new_tokens"] == 12 and r["thinking"] is False
        assert r["unparseable_rate"] == summary[phase]["unparseable_rate"] and 0.0 <= r["unparseable_rate"] <= 1.0
        assert len((run / phase / "predictions.jsonl").read_text().splitlines()) == 4
    compare = json.loads((run / "compare.json").read_text())
    assert compare["rows"][0]["result"] == "generate" and compare["rows"][0]["n"] == 4
    assert "p_value" in json.dumps(compare["rows"][0]["mcnemar"])
    assert (run / "curves.png").stat().st_size > 1000
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and b"train/reward" in events[0].read_bytes()
    base = AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m-instruct").path)
    model = PeftModel.from_pretrained(base, str(run / "adapter"))
    assert list(model.peft_config) == ["default"]


@pytest.mark.parametrize("path", [SMOKE, GPU_RECIPE])
def test_shipped_grpo_recipes_load_and_pass_the_checks(path):
    recipe = load(path, [])
    assert recipe.method == "grpo"
    assert grpo_problems(recipe.grpo, recipe.train.batch_size, recipe.train.grad_accum) == []
    assert path.read_text().startswith(f"# medtune train configs/{path.name}")


def test_a_run_folder_is_not_reused_and_grpo_does_not_resume(tmp_path, tiny_model_dir, sample_jsonl):
    path = tiny_recipe(tmp_path, tiny_model_dir, sample_jsonl)
    assert grpo.run_grpo(load(path, ["baseline_eval=false"]))["steps"] == 1
    with pytest.raises(MedtuneError, match="this run folder already has checkpoints"):
        grpo.run_grpo(load(path, ["baseline_eval=false"]))
    with pytest.raises(MedtuneError) as err:
        grpo.run_grpo(load(path, ["baseline_eval=false"]), resume=True)
    assert str(err.value) == f"--resume: {grpo.RESUME_REFUSED}"


def test_train_resume_reaches_the_grpo_runner(tmp_path, tiny_model_dir, sample_jsonl):
    """`medtune train --resume` with method grpo hands the flag to run_grpo, which says why it refuses."""
    path = tiny_recipe(tmp_path, tiny_model_dir, sample_jsonl)
    proc = run_cli("train", str(path), "--resume")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip() == ("medtune: error: --resume: method grpo does not resume: TRL's GRPOTrainer, resumed from a "
                                   "checkpoint, trains one step past max_steps, so the adapter would not be the "
                                   "run the recipe describes; start it again with another output_dir")
    assert not (tmp_path / "run").exists()  # refused before anything was written
