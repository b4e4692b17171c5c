"""How each method adapts a loaded model: the only place methods differ."""

from __future__ import annotations

from typing import Any

from medtune.errors import MedtuneError

BNB_ROCM = ("bitsandbytes with a ROCm backend is built from the ROCm fork (github.com/ROCm/bitsandbytes, "
            "branch rocm_enabled) or installed from AMD's wheels; see docs/rocm.md")


def precision_for(backend: Any, requested: str) -> str:
    """fp32, bf16 or fp16 for training on this backend ('auto': bf16 where supported)."""
    if requested == "auto":
        if backend.kind in ("cuda", "rocm"):
            return "bf16" if backend.dtype == "bfloat16" else "fp16"
        return "fp32"
    if requested == "fp16" and backend.kind == "cpu":
        raise MedtuneError("fp16 training needs a GPU; on the CPU use fp32 (or bf16)", field="train.precision")
    return requested


def load_dtype(method: str, precision: str) -> str:
    """The dtype to load base weights in: half for adapter methods (qlora: its non-quantized parts),
    fp32 masters for full training."""
    if method in ("lora", "dora", "qlora") and precision in ("bf16", "fp16"):
        return {"bf16": "bfloat16", "fp16": "float16"}[precision]
    return "float32"


def check_qlora(backend: Any) -> None:
    """bitsandbytes must be importable and have a kernel for this device, else a clear error."""
    if backend.kind not in ("cuda", "rocm"):
        raise MedtuneError("qlora needs a CUDA or ROCm GPU with bitsandbytes; on this machine "
                           f"({backend.kind}) use method=lora", field="method")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        extra = f" On ROCm, {BNB_ROCM}." if backend.kind == "rocm" else ""
        raise MedtuneError("qlora needs bitsandbytes: pip install bitsandbytes." + extra, field="method") from None


def quantization_config(method: str) -> Any:
    """4-bit NF4 quantization for qlora; None otherwise."""
    if method != "qlora":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def adapt(model: Any, recipe: Any) -> Any:
    """Wrap the model for the recipe's method; returns the model to train."""
    method = recipe.method
    if method in ("full", "multiple_choice"):
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=recipe.model.gradient_checkpointing)
    lc = recipe.lora
    config = LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=lc.target_modules,
                        use_dora=method == "dora", task_type="CAUSAL_LM", bias="none")
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise MedtuneError(f"{' '.join(str(err).split())[:300]}", field="lora.target_modules") from None


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def liger_available(backend: Any) -> bool:
    """Liger kernels run on CUDA/ROCm GPUs when the liger-kernel package is importable."""
    import importlib.util

    return backend.kind in ("cuda", "rocm") and importlib.util.find_spec("liger_kernel") is not None


def check_fp8(backend: Any) -> None:
    """FP8 training needs a GPU with FP8 matmuls and torchao; else a clear error before loading."""
    import torch

    if backend.kind not in ("cuda", "rocm"):
        raise MedtuneError("fp8 training needs an FP8-capable GPU (H100, MI300X); set train.fp8=false",
                           field="train.fp8")
    if backend.kind == "cuda" and torch.cuda.get_device_capability() < (8, 9):
        raise MedtuneError("this GPU has no FP8 matmuls (compute capability 8.9+ needed); set train.fp8=false",
                           field="train.fp8")
    try:
        import torchao.float8  # noqa: F401
    except ImportError:
        raise MedtuneError("fp8 training needs torchao: pip install torchao", field="train.fp8") from None


def apply_fp8(model: Any, backend: Any) -> Any:
    """Swap the model's linear layers for torchao float8 training ones (GPU with FP8 matmuls only)."""
    import torch

    check_fp8(backend)
    from torchao.float8 import convert_to_float8_training

    def wanted(module: Any, name: str) -> bool:  # dimensions must be multiples of 16; keep the LM head in bf16
        return isinstance(module, torch.nn.Linear) and "lm_head" not in name and "lora_" not in name and \
            module.in_features % 16 == 0 and module.out_features % 16 == 0

    convert_to_float8_training(model, module_filter_fn=wanted)
    return model


def prepare_for_training(model: Any, recipe: Any, backend: Any) -> Any:
    """No KV cache, FP8 if asked, the method's adapter, gradient checkpointing if asked: the one
    preparation that `medtune train` and `medtune bench train` share."""
    # No KV cache while training: besides saving memory, transformers recognises packed
    # (padding-free) batches only when no cache exists; with one, packed examples attend to each other.
    model.config.use_cache = False
    if recipe.train.fp8:
        model = apply_fp8(model, backend)
    model = adapt(model, recipe)
    if recipe.model.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    return model
