"""The limit bench figures are a fraction of (medtune.bench.peak) and the FLOPs they count: the method
registry's count, the same for `medtune plan` and `medtune bench train`."""

from __future__ import annotations

import pytest


def test_bench_and_plan_count_the_same_flops_for_the_demo_recipe():
    from transformers import AutoConfig

    from medtune.bench.train import registry_flops
    from medtune.plan import load_config, plan
    from medtune.train.recipe import load_recipe

    recipe = load_recipe("configs/demo-cpu.yaml", [])
    assert recipe.lora.layers == "top:15"  # the demo adapts the top half: the backward pass stops there
    cfg = dict(load_config(recipe.model.name)[0])
    planned = plan(recipe.model.name, recipe.method, "h100", batch=recipe.train.batch_size, seq_len=384,
                   grad_ckpt=False, layers=recipe.lora.layers)["time"]["flops_per_token"]
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    flops, count = registry_flops(recipe, config)
    assert flops == planned
    assert count["backward_layers"] == 15 and count["layers"] == 30 and count["k"] == pytest.approx(3.0)
    # and not what bench counted before: 4N over every layer, with the tied LM head as a matmul every token
    everything = load_recipe("configs/demo-cpu.yaml", ["lora.layers=null"])
    assert registry_flops(everything, config)[0] == pytest.approx(flops * 4 / 3)


def test_the_registry_counts_weight_gradients_only_where_every_weight_trains():
    from medtune.train.methods import get_method

    assert get_method("full").flops_per_token(100, 10, 5) == 600  # forward, activation and weight gradients
    assert get_method("lora").flops_per_token(100, 10) == 400
    assert get_method("lora").flops_per_token(100, 10, 5) == 300
    assert get_method("dora").flops_per_token(100, 10, 10) == 400


def test_the_limit_is_measured_now_and_the_better_of_before_and_after(monkeypatch):
    import torch

    from medtune.bench import peak

    r = peak.matmul_rate("cpu", torch.float32, sizes=(64, 128), trials=2, seconds=0.01)
    assert set(r["by_size"]) == {"64", "128"} and r["flops_per_s"] == max(r["by_size"].values()) > 0
    assert r["threads"] == torch.get_num_threads()
    before = {"float32": {"flops_per_s": 10.0}}
    after = {"float32": {"flops_per_s": 8.0}}
    lim = peak.limit(before, after)
    assert lim["float32"]["flops_per_s"] == 10.0 and lim["float32"]["after"] == after["float32"]
    f = peak.fraction(7.0, {"float32": {"flops_per_s": 10.0}, "bfloat16": {"flops_per_s": 35.0}}, "bfloat16")
    assert f == {"flops_per_s": 7.0, "of_bfloat16_peak": 0.2, "of_float32_peak": 0.7}


def test_bf16_is_measured_only_where_the_cpu_has_bf16_instructions(monkeypatch):
    from medtune.bench import peak

    measured = []
    monkeypatch.setattr(peak, "matmul_rate", lambda device, dtype: measured.append(str(dtype)) or {})
    monkeypatch.setattr(peak, "cpu_flags", lambda: {"avx2", "fma"})
    assert list(peak.measure("cpu")) == ["float32"] and peak.cpu_bf16() == []
    monkeypatch.setattr(peak, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert list(peak.measure("cpu")) == ["float32", "bfloat16"] and peak.cpu_bf16() == ["avx512_bf16"]
    assert measured == ["torch.float32", "torch.float32", "torch.bfloat16"]


def test_scoring_counts_the_decoder_linears_not_the_head(tiny_model_dir):
    import torch

    from medtune.bench.peak import decoder_linear_params
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    head = model.get_output_embeddings().weight.numel()
    every = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert decoder_linear_params(model) == every - head > 0
