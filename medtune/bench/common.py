"""What bench train and bench eval share: device sync, measured matmul rate, shape models, set-up, memory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError

SHAPES = Path(__file__).resolve().parent.parent / "resources" / "shapes"


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_rate(device: str, dtype: Any, n: int | None = None, repeats: int = 10) -> float:
    """Measured FLOP/s of a square matmul on this device and dtype."""
    import torch

    n = n or (4096 if device.startswith("cuda") else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0)


def matmul_params(model: Any) -> int:
    """Parameters of the linear layers a token passes (LoRA adapters excluded; LM head included)."""
    import torch

    total = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and "lora_" not in name:
            total += module.weight.numel()
    return total


def shape_model(shape: str, dtype: Any) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = SHAPES / shape
    if not (folder / "config.json").is_file():
        known = ", ".join(sorted(p.name for p in SHAPES.iterdir()))
        raise MedtuneError(f"unknown shape; shipped shapes: {known}", path=shape, field="--shape")
    config = AutoConfig.from_pretrained(folder)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=dtype)


def setup(recipe: Any, shape: str | None, tokenizer_name: str | None, device: str | None,
           for_training: bool) -> dict:
    from medtune.backend import select_backend
    from medtune.data.prompts import resolve_template
    from medtune.models import load_causal_lm, load_tokenizer, resolve_model
    from medtune.train import methods

    if recipe.method == "multiple_choice":
        raise MedtuneError("bench measures causal LMs; encoders are small enough to time with medtune train",
                           field="method")
    precision = methods.precision_for(select_backend(device), recipe.train.precision)
    backend = select_backend(device, dtype=methods.load_dtype(recipe.method, precision) if for_training
                             else "auto")
    if for_training and recipe.train.fp8:
        methods.check_fp8(backend)
    tok_ref = resolve_model(tokenizer_name or recipe.model.name)
    tokenizer = load_tokenizer(tok_ref, recipe.model.trust_remote_code)
    if shape:
        model = shape_model(shape, backend.torch_dtype()).to(backend.device)
        model_name = f"{shape} shape, random weights"
    else:
        model = load_causal_lm(resolve_model(recipe.model.name), backend,
                               trust_remote_code=recipe.model.trust_remote_code,
                               attn_implementation=recipe.model.attn_implementation)
        model_name = recipe.model.name
    vocab = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise MedtuneError(f"the tokenizer has {len(tokenizer)} tokens but the model only {vocab}; pass a "
                           "matching --tokenizer", field="--tokenizer")
    template = resolve_template(recipe.data.template, tokenizer)
    return {"backend": backend, "precision": precision, "tokenizer": tokenizer, "model": model,
            "model_name": model_name, "template": template, "tokenizer_name": tok_ref.name}


def memory(device: str) -> dict:
    import resource

    import torch

    out = {"host_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}
    if device.startswith("cuda"):
        out["device_peak_allocated_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
        out["device_peak_reserved_gb"] = torch.cuda.max_memory_reserved() / 2 ** 30
    return out
