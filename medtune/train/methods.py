"""The METHODS registry: how each training method wraps a model, which precision it loads in, what it
saves. Run code looks a method up here instead of branching on its name; a new method is one entry."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from medtune.errors import MedtuneError

if TYPE_CHECKING:
    from medtune.train.recipe import Recipe

BNB_ROCM = ("bitsandbytes with a ROCm backend is built from the ROCm fork (github.com/ROCm/bitsandbytes, "
            "branch rocm_enabled) or installed from AMD's wheels; see docs/rocm.md")
HALF = {"bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class Memory:
    """How the memory planner (medtune.plan) counts a method, in bytes per parameter."""

    order: int  # place in the planner's list of methods, lightest first
    preference: int  # place in its best-fitting choice, most capable first
    weight_bytes: float = 2.0  # base weights (bf16; fp32 masters: 4)
    linear_bytes: float | None = None  # the layers' linear weights when quantized (NF4 with double quant: 0.516)
    state_bytes: float = 16.0  # per trainable parameter: fp32 weight, gradient and two Adam moments
    magnitude: bool = False  # DoRA: magnitude vectors, one layer's adapted weights materialised for the norm


@dataclass(frozen=True)
class Method:
    """One training method: its model wrapping, load dtype, saved folder and model kind."""

    name: str
    wrap: Callable[[Any, Any], Any]  # (model, recipe) -> the model to train
    half_weights: bool  # base weights in bf16/fp16 under a half precision (adapters); else fp32 masters
    saves: str  # "adapter" or "model": the run folder's sub-folder for the trained weights
    encoder: bool = False  # an encoder with a multiple-choice head (else a causal LM)
    check: Callable[[Any], None] | None = None  # (backend) -> None, raises a MedtuneError when unusable
    quantization: Callable[[], Any] | None = None  # () -> a transformers quantization config
    runner: str | None = None  # "module:function" owning the whole run (grpo), imported lazily
    memory: Memory | None = None  # the planner's model; None: planned as `plan_as`, or not planned
    plan_as: str | None = None  # the method whose memory model stands in for this one (and why: plan_note)
    plan_note: str = ""
    problems: str | None = None  # "module:function" (recipe) -> [(key, problem)], the method's own checks
    help: str = ""
    @property
    def trains_all(self) -> bool:
        """Every weight trains and the whole model is saved (else an adapter over frozen weights)."""
        return self.saves == "model"

    def flops_factor(self, backward_fraction: float = 1.0) -> float:
        """Training FLOPs per token per matmul parameter: 6 when every weight trains (forward 2, activation and
        weight gradients 4); an adapter 2 + 2 x the fraction of layers the backward pass runs through."""
        return 6.0 if self.trains_all else 2.0 + 2.0 * backward_fraction

    def flops_per_token(self, linear: int, layers: int, backward_layers: int | None = None) -> float:
        """Matmul FLOPs one trained token costs (the count `medtune plan` and `medtune bench train` share): the
        factor above times the N matmul parameters, the backward pass over `backward_layers` of `layers` (from the
        lowest adapted layer up; all when None)."""
        frac = min(backward_layers, layers) / layers if backward_layers else 1.0
        return self.flops_factor(frac) * linear

    def recipe_problems(self, recipe: Recipe) -> list[tuple[str, str]]:
        """The method's own recipe checks: (dotted key, problem) pairs."""
        return _imported(self.problems)(recipe) if self.problems else []

    def load_dtype(self, precision: str) -> str:
        """The dtype to load base weights in: half for adapter methods under bf16/fp16, else float32."""
        return HALF[precision] if self.half_weights and precision in HALF else "float32"

    def run_function(self) -> Callable[[Any], dict] | None:
        """The function that runs this method end to end instead of `run_train`'s Trainer, if any."""
        return _imported(self.runner) if self.runner else None


def _imported(target: str) -> Callable:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def precision_for(backend: Any, requested: str) -> str:
    """fp32, bf16 or fp16 for training on this backend ('auto': bf16 where supported)."""
    if requested == "auto":
        if backend.kind in ("cuda", "rocm"):
            return "bf16" if backend.dtype == "bfloat16" else "fp16"
        return "fp32"
    if requested == "fp16" and backend.kind == "cpu":
        raise MedtuneError("fp16 training needs a GPU; on the CPU use fp32 (or bf16)", field="train.precision")
    return requested


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


def nf4_config() -> Any:
    """4-bit NF4 quantization with bf16 compute (qlora)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def train_all(model: Any, recipe: Recipe) -> Any:
    """Every parameter trains (full fine-tuning, a multiple-choice encoder)."""
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _peft(model: Any, recipe: Recipe, dora: bool = False) -> Any:
    from peft import LoraConfig, get_peft_model

    lc = recipe.lora
    layers = adapted_layers(lc.layers, getattr(model.config, "num_hidden_layers", None))
    targets = lc.target_modules
    if layers is not None and targets == "all-linear":  # PEFT takes a layer list only with module names
        import torch

        head = model.get_output_embeddings()
        targets = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                          if isinstance(m, torch.nn.Linear) and m is not head and ".layers." in f".{name}"})
    config = LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=targets,
                        use_dora=dora, task_type="CAUSAL_LM", bias="none", layers_to_transform=layers)
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise MedtuneError(f"{' '.join(str(err).split())[:300]}", field="lora.target_modules") from None


def adapted_layers(spec: Any, n_layers: int | None) -> list[int] | None:
    """`lora.layers` as layer indices: None (every layer), 'top:N' or a list of indices."""
    if spec is None:
        return None
    if isinstance(spec, str) and spec.startswith("top:") and spec[4:].isdigit() and n_layers:
        n = int(spec[4:])
        if 1 <= n <= n_layers:
            return list(range(n_layers - n, n_layers))
    elif isinstance(spec, list) and spec and all(isinstance(i, int) and 0 <= i < (n_layers or 10 ** 9) for i in spec):
        return sorted(set(spec))
    raise MedtuneError(f"expected 'top:N' (1 <= N <= {n_layers}) or a list of layer indices below {n_layers}, "
                       f"got {spec!r}", field="lora.layers")


def lora(model: Any, recipe: Recipe) -> Any:
    """A LoRA adapter on the recipe's target modules."""
    return _peft(model, recipe)


def dora(model: Any, recipe: Recipe) -> Any:
    """A DoRA adapter (LoRA with a learned magnitude per output)."""
    return _peft(model, recipe, dora=True)


def qlora(model: Any, recipe: Recipe) -> Any:
    """A LoRA adapter over a 4-bit base prepared for k-bit training."""
    from peft import prepare_model_for_kbit_training

    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=recipe.model.gradient_checkpointing)
    return _peft(model, recipe)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("lora", lora, half_weights=True, saves="adapter", memory=Memory(order=1, preference=1),
           help="LoRA adapter"),
    Method("dora", dora, half_weights=True, saves="adapter", memory=Memory(order=2, preference=2, magnitude=True),
           help="DoRA adapter"),
    Method("full", train_all, half_weights=False, saves="model",
           memory=Memory(order=3, preference=0, weight_bytes=4.0, state_bytes=12.0),
           help="every weight trains (fp32 masters)"),
    Method("qlora", qlora, half_weights=True, saves="adapter", check=check_qlora, quantization=nf4_config,
           memory=Memory(order=0, preference=3, linear_bytes=0.516),
           help="LoRA over a 4-bit NF4 base (CUDA/ROCm with bitsandbytes)"),
    Method("multiple_choice", train_all, half_weights=False, saves="model", encoder=True,
           help="an encoder with a multiple-choice head"),
    Method("grpo", lora, half_weights=True, saves="adapter", runner="medtune.train.grpo:run_grpo",
           problems="medtune.train.grpo:recipe_problems", plan_as="lora",
           plan_note="GRPO is planned as its LoRA policy training; add the generation KV cache and, with vLLM "
                     "colocated, its memory share (docs/grpo.md)",
           help="group-relative policy optimisation of a LoRA adapter on generated answers"),
)}


def get_method(name: str) -> Method:
    """The registry entry for a method name (a MedtuneError naming the choices otherwise)."""
    try:
        return METHODS[name]
    except KeyError:
        raise MedtuneError(f"unknown method {name!r}; one of {', '.join(METHODS)}", field="method") from None


def planned_methods() -> dict[str, Method]:
    """The methods the memory planner counts, lightest first."""
    return dict(sorted(((n, m) for n, m in METHODS.items() if m.memory), key=lambda nm: nm[1].memory.order))


def load_dtype(method: str, precision: str) -> str:
    """The dtype to load base weights in for a method name (see Method.load_dtype)."""
    return get_method(method).load_dtype(precision)


def adapt(model: Any, recipe: Recipe) -> Any:
    """Wrap the model for the recipe's method; returns the model to train."""
    return get_method(recipe.method).wrap(model, recipe)


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

    from medtune.backend import fp8_supported

    if backend.kind not in ("cuda", "rocm"):
        raise MedtuneError("fp8 training needs an FP8-capable GPU (H100, MI300X); set train.fp8=false",
                           field="train.fp8")
    if not fp8_supported(backend.kind, torch.cuda.get_device_properties(torch.device(backend.device))):
        raise MedtuneError(f"{backend.name} has no FP8 matrix cores (NVIDIA sm_89+, AMD gfx942/gfx950 only); "
                           "set train.fp8=false", field="train.fp8")
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


def attention_for(recipe: Recipe, backend: Any) -> str | None:
    """The attention kernel a run loads: the recipe's own choice; with packing on a GPU, flash-attention's
    varlen kernel when installed, else flex_attention with a document mask built from `position_ids`
    (transformers compiles it); otherwise None, transformers' default (sdpa; packed rows on the CPU get a
    dense document mask, the reference path: flex_attention is unfused there)."""
    from medtune.backend import have

    if recipe.model.attn_implementation or not recipe.train.packing or backend.kind not in ("cuda", "rocm"):
        return recipe.model.attn_implementation
    return "flash_attention_2" if have("flash_attn") else "flex_attention"


def prepare_for_training(model: Any, recipe: Recipe, backend: Any) -> Any:
    """No KV cache, FP8 if asked, the method's wrapping, gradient checkpointing if asked: the one
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
