"""What the bench verbs share: device sync, the measured peak matmul rate, shape models, set-up, memory,
and prediction agreement with a tie tolerance."""

from __future__ import annotations

import dataclasses
import gc
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from medtune.bench import peak
from medtune.bench.peak import sync  # re-exported: bench's runs time with it
from medtune.errors import MedtuneError
from medtune.eval.runtime import load_runtime

if TYPE_CHECKING:
    from medtune.train.recipe import Recipe

SHAPES = Path(__file__).resolve().parent.parent / "resources" / "shapes"
# Two log-likelihoods closer than this are a tie in that dtype: a different argmax between two runs counts
# as a flip only when the reference run's margin between the two letters is larger. A letter's
# log-likelihood under a 151,936-token vocabulary is about -12; bf16 keeps 8 bits of mantissa (unit roundoff
# 2^-8 ~ 0.004 relative: ~0.05 at that size), fp16 11 bits (~0.01), fp32 24 (1e-4 leaves room for summation).
TIE_TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}
_RATES: dict = {}


def matmul_rate(device: str, dtype: Any, n: int | None = None, repeats: int = 3) -> float:
    """The device's peak matmul rate in FLOP/s for this dtype: `bench.peak.matmul_rate` (4096 and 8192 on a
    GPU, where an 8192^3 bf16 product reaches the sustained rate; 1024 and 2048 on a CPU; best of `repeats`
    timings a size), measured once per process and (device, dtype, n)."""
    key = (device, str(dtype), n)
    if key not in _RATES:
        _RATES[key] = peak.matmul_rate(device, dtype, (n,) if n else None, trials=repeats)["flops_per_s"]
    return _RATES[key]


def fp8_matmul_rate(device: str, n: int = 8192, repeats: int = 10) -> float | None:
    """Peak FP8 (e4m3) matmul rate through torch._scaled_mm, the kernel fp8 training runs; None where the
    device or this torch has none."""
    import torch

    if not device.startswith("cuda") or not hasattr(torch, "_scaled_mm"):
        return None
    fp8 = torch.float8_e4m3fnuz if getattr(torch.version, "hip", None) and \
        "gfx942" in torch.cuda.get_device_properties(device).gcnArchName else torch.float8_e4m3fn
    try:
        a = torch.randn(n, n, device=device).to(fp8)
        b = torch.randn(n, n, device=device).to(fp8).t()
        one = torch.ones((), device=device)
        mm = lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)  # noqa: E731
        mm()
        best = 0.0
        for _ in range(3):
            sync(device)
            t0 = time.perf_counter()
            for _ in range(repeats):
                mm()
            sync(device)
            best = max(best, 2 * n ** 3 * repeats / (time.perf_counter() - t0))
        return best
    except (RuntimeError, TypeError):
        return None


def peak_rate(device: str, precision: str, fp8: bool = False) -> tuple[float, str]:
    """(FLOP/s, what it is) that MFU divides by: the fp8 rate for fp8 training, else the training dtype's."""
    import torch

    if fp8:
        rate = fp8_matmul_rate(device)
        if rate:
            return rate, "fp8 e4m3 matmul (torch._scaled_mm), measured"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    return matmul_rate(device, dtype), f"{str(dtype).replace('torch.', '')} matmul, best of 4096/8192, measured"


def matmul_params(model: Any) -> int:
    """Parameters of the linear layers a token passes (LoRA adapters excluded; LM head included)."""
    import torch

    total = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and "lora_" not in name:
            total += module.weight.numel()
    return total


def shape_config(shape: str, **overrides: Any) -> Any:
    """The config of a shipped shape (qwen3-1.7b) or of a folder / config.json path, with overrides."""
    from transformers import AutoConfig

    path = Path(shape)
    folder = SHAPES / shape if (SHAPES / shape / "config.json").is_file() else \
        path.parent if path.name == "config.json" and path.is_file() else path
    if not (folder / "config.json").is_file():
        known = ", ".join(sorted(p.name for p in SHAPES.iterdir()))
        raise MedtuneError(f"unknown shape; shipped shapes: {known}", path=shape, field="--shape")
    cfg = json.loads((folder / "config.json").read_text("utf-8"))
    config = AutoConfig.for_model(cfg.pop("model_type"), **{**cfg, **overrides})
    return config


def shape_model(shape: str, dtype: Any, device: str = "cpu", seed: int = 0, attn_implementation: str | None = None,
                **overrides: Any) -> Any:
    """That architecture with random weights (seeded), built directly on `device`; the attention kernel as
    `load_causal_lm` takes it (None: transformers' default)."""
    import torch
    from transformers import AutoModelForCausalLM

    config = shape_config(shape, **overrides)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    torch.manual_seed(seed)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype, **extra)


def setup(recipe: Recipe, shape: str | None, tokenizer_name: str | None, device: str | None,
          for_training: bool) -> dict:
    """Backend, precision, tokenizer, model (the recipe's, or a shape with random weights) and template, through
    the one loader (`load_runtime`) that `medtune train` uses."""
    from medtune.backend import select_backend
    from medtune.train import methods
    from medtune.train.run import runtime_spec

    method = methods.get_method(recipe.method)
    if method.encoder:
        raise MedtuneError("bench measures causal LMs; encoders are small enough to time with medtune train",
                           field="method")
    precision = methods.precision_for(select_backend(device), recipe.train.precision)
    spec = runtime_spec(recipe, method, precision, device)
    if not for_training:  # timing evaluation: the best dtype of the device, the full-precision base
        spec = dataclasses.replace(spec, dtype="auto", quantization=None)
    spec = dataclasses.replace(spec, tokenizer=tokenizer_name)
    backend = select_backend(device, dtype=spec.dtype)
    if for_training and recipe.train.fp8:
        methods.check_fp8(backend)
    model = shape_model(shape, backend.torch_dtype(), backend.device, attn_implementation=spec.attn_implementation) \
        if shape else None
    rt = load_runtime(spec, model=model, quiet=True)
    vocab = rt.model.get_input_embeddings().weight.shape[0]
    if len(rt.tokenizer) > vocab:
        raise MedtuneError(f"the tokenizer has {len(rt.tokenizer)} tokens but the model only {vocab}; pass a "
                           "matching --tokenizer", field="--tokenizer")
    return {"backend": rt.backend, "precision": precision, "tokenizer": rt.tokenizer, "model": rt.model,
            "model_name": f"{shape} shape, random weights" if shape else recipe.model.name, "template": rt.template,
            "tokenizer_name": tokenizer_name or rt.ref.name}


def reset_memory(device: str) -> None:
    """Free what earlier runs left and restart the device's peak counters, so the next peak is its own."""
    import torch

    gc.collect()
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def memory(device: str) -> dict:
    """Peak host RSS of this process and, on a GPU, peak allocated and reserved device memory."""
    import resource

    import torch

    out = {"host_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}
    if device.startswith("cuda"):
        out["device_peak_allocated_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
        out["device_peak_reserved_gb"] = torch.cuda.max_memory_reserved() / 2 ** 30
    return out


def agreement(reference: Sequence[Sequence[float]], other: Sequence[Sequence[float]], tolerance: float) -> dict:
    """Per-question agreement of the argmax letters of two runs' log-likelihoods: identical, flips beyond the
    tie tolerance (the reference's margin between the two letters > tolerance), and max |Δ log-likelihood|."""
    same = flips = 0
    worst = 0.0
    for ref, oth in zip(reference, other):
        a = max(range(len(ref)), key=ref.__getitem__)
        b = max(range(len(oth)), key=oth.__getitem__)
        worst = max([worst, *(abs(x - y) for x, y in zip(ref, oth))])
        if a == b:
            same += 1
        elif ref[a] - ref[b] > tolerance:
            flips += 1
    n = len(reference)
    return {"questions": n, "identical": same, "identical_fraction": same / n if n else 1.0,
            "flips_beyond_tolerance": flips, "agreement_with_tolerance": (n - flips) / n if n else 1.0,
            "tolerance": tolerance, "max_abs_loglik_difference": worst}
