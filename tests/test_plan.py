"""The memory planner: exact parameter counts, and estimates against a measured CPU peak."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, run_cli
from medtune.plan import Arch, count_parameters, estimate, load_config, lora_parameters


def _meta_count(config_cls, model_cls, **kw) -> int:
    with torch.device("meta"):  # no memory: shapes only
        model = model_cls(config_cls(**kw))
    return sum(p.numel() for p in model.parameters())


def test_qwen3_1_7b_parameters_exact():
    cfg, _ = load_config("qwen3-1.7b")
    a = Arch.from_config(cfg)
    from transformers import Qwen3Config, Qwen3ForCausalLM

    kw = {k: v for k, v in cfg.items() if k not in ("architectures", "model_type", "torch_dtype")}
    assert count_parameters(a)["total"] == _meta_count(Qwen3Config, Qwen3ForCausalLM, **kw) == 1_720_574_976


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_other_families_exact(family):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    kw = dict(vocab_size=1000, hidden_size=64, intermediate_size=176, num_hidden_layers=3, num_attention_heads=8,
              num_key_value_heads=2, tie_word_embeddings=False)
    cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[family]
    a = Arch.from_config({**kw, "model_type": family})
    assert a.qkv_bias is (family == "qwen2")
    assert count_parameters(a)["total"] == _meta_count(*cls, **kw)


def test_lora_parameter_count_matches_peft():
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3Config, Qwen3ForCausalLM

    kw = dict(vocab_size=500, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16)
    model = get_peft_model(Qwen3ForCausalLM(Qwen3Config(**kw)), LoraConfig(r=8, target_modules="all-linear"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert lora_parameters(Arch.from_config({**kw, "model_type": "qwen3"}), 8) == trainable


def test_estimate_is_within_15_percent_of_a_measured_cpu_peak():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "plan_vs_measured.py"), "--device", "cpu",
                           "--shape", "tiny", "--batches", "4", "--seq-len", "256"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1]
    error = float(line.rsplit("(", 1)[1].rstrip("%)")) / 100
    assert abs(error) <= 0.15, line


def test_bigger_batches_and_longer_sequences_need_more_and_checkpointing_less():
    a = Arch.from_config(load_config("qwen3-1.7b")[0])
    small, big = estimate(a, "lora", "h100", batch=4), estimate(a, "lora", "h100", batch=16)
    assert big.total_gib > small.total_gib and small.max_batch() == big.max_batch()
    assert estimate(a, "lora", "h100", batch=16, grad_ckpt=True).total_gib < big.total_gib
    assert estimate(a, "full", "rtx4090", batch=1).fits is False  # 1.7B x 16 bytes alone is 25.6 GiB
    assert estimate(a, "qlora", "rtx4090", batch=1).total_gib < estimate(a, "lora", "rtx4090", batch=1).total_gib


def test_adapting_the_top_half_keeps_half_the_activations_and_halves_the_backward():
    from medtune.plan import plan

    a = Arch.from_config(load_config("qwen3-1.7b")[0])
    all_layers, top = estimate(a, "lora", "h100", batch=8), estimate(a, "lora", "h100", batch=8, adapted=a.layers // 2)
    assert top.parts["activations"] == pytest.approx(all_layers.parts["activations"] / 2)
    assert top.parts["trainable_state"] == pytest.approx(all_layers.parts["trainable_state"] / 2)
    whole, half = (plan("qwen3-1.7b", "lora", "h100", batch=8, seq_len=512, grad_ckpt=False, layers=spec)
                   for spec in (None, f"top:{a.layers // 2}"))
    assert whole["time"]["flops_per_token"] / half["time"]["flops_per_token"] == pytest.approx(4 / 3)
    assert half["adapted_layers"] == a.layers // 2 and half["lora_parameters"] * 2 == whole["lora_parameters"]
    from medtune.plan_text import format_plan

    assert f"LoRA r=16 all-linear on {a.layers // 2} of {a.layers} layers:" in format_plan(half)
    assert "LoRA r=16 all-linear:" in format_plan(whole)


def test_plan_cli_and_table(tmp_path):
    shape = ROOT / "medtune" / "resources" / "shapes" / "qwen3-1.7b"
    proc = run_cli("plan", "--model", str(shape), "--method", "lora", "--gpu", "mi300x")
    assert proc.returncode == 0, proc.stderr
    assert "1.721B parameters" in proc.stdout and "-> fits" in proc.stdout and "logits" in proc.stdout
    proc = run_cli("plan", "--model", "qwen3-1.7b", "--method", "full", "--gpu", "rtx4090", "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["estimate"]["fits"] is False
    proc = run_cli("plan", "--model", "qwen3-1.7b", "--table")
    assert proc.returncode == 0 and "mi300x" in proc.stdout and proc.stdout.count("\n") >= 5
    proc = run_cli("plan", "--model", "qwen3-1.7b", "--gpu", "h10")
    assert proc.returncode == 2 and "unknown GPU 'h10' (did you mean 'h100'?)" in proc.stderr
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "mamba", "hidden_size": 8}))
    proc = run_cli("plan", "--model", str(tmp_path))
    assert proc.returncode == 2 and "model_type: model_type 'mamba' is not supported" in proc.stderr


def test_sharded_strategies_divide_weights_and_state_by_the_gpus():
    from medtune.plan import plan

    kw = dict(batch=8, seq_len=512, grad_ckpt=False)
    ddp = plan("qwen3-1.7b", "full", "h100", gpus=8, strategy="ddp", **kw)["estimate"]["parts_gib"]
    one = plan("qwen3-1.7b", "full", "h100", **kw)["estimate"]["parts_gib"]
    for strategy in ("fsdp", "zero3"):
        got = plan("qwen3-1.7b", "full", "h100", gpus=8, strategy=strategy, **kw)["estimate"]["parts_gib"]
        assert got["weights"] == pytest.approx(ddp["weights"] / 8)
        assert got["trainable_state"] == pytest.approx(ddp["trainable_state"] / 8)
        assert got["activations"] == ddp["activations"] and got["logits"] == ddp["logits"]
    assert ddp == one  # data parallel replicates: each GPU holds what one GPU alone does


def test_plan_names_an_unknown_strategy():
    proc = run_cli("plan", "--model", "qwen3-1.7b", "--gpus", "2", "--strategy", "zero4")
    assert proc.returncode != 0
    assert proc.stderr.strip() == ("medtune: error: --strategy: unknown strategy 'zero4' (did you mean 'zero3'?); "
                                   "choose ddp, fsdp, zero3")
