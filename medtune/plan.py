"""`medtune plan`: will this model fit, in which precision, with which method — from config.json alone.

Parameters are counted exactly from the architecture (Llama-family decoders: Llama, Mistral, Qwen2,
Qwen3). Memory is the sum of named parts, each written down below:

- weights: parameters x bytes (bf16 2; 4-bit NF4 with double quantization 0.52 for linear layers)
- trainable state: trainable parameters x 16 bytes (fp32 weight, fp32 gradient, two AdamW moments);
  full fine-tuning keeps fp32 master weights, so all parameters cost 16 bytes
- activations per token and layer (bf16, flash/memory-efficient attention, no S^2 term):
  4h + 2(n_h d) + 2(n_kv d) + 4i elements (norm inputs, projections' inputs, attention q/k/v/out,
  the MLP's gate, activation, up and product), plus n_h d + n_kv d with q/k norms (Qwen3), plus
  LoRA dropout copies of each adapted layer's input when dropout > 0 (5h + n_h d + i, and 1-byte masks);
  with gradient checkpointing only each layer's input (h) is kept, plus one layer recomputed at a time
- logits: batch x labelled positions x vocab x 12 bytes (bf16 logits, the fp32 copy and log-softmax
  for the loss, its gradient). medtune's trainer runs the LM head only where labels are (answer-only
  loss: the answer's few tokens); with loss on every token, or another trainer, the whole sequence:
  with a 151,936-token vocabulary that is often the largest activation
- runtime: 1 GiB for the CUDA/HIP context and library workspaces, and 5% allocator slack.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError, did_you_mean
from medtune.parallel import per_gpu

GIB = 2 ** 30
GPUS = {  # name: (label, memory in GiB as the device reports it, bf16)
    "mi300x": ("AMD Instinct MI300X", 192, True), "mi325x": ("AMD Instinct MI325X", 256, True),
    "mi250": ("AMD Instinct MI250 (one GCD)", 64, True), "h100": ("NVIDIA H100 80GB", 80, True),
    "h200": ("NVIDIA H200", 141, True), "a100-40": ("NVIDIA A100 40GB", 40, True),
    "a100-80": ("NVIDIA A100 80GB", 80, True), "rx7900xtx": ("AMD Radeon RX 7900 XTX", 24, True),
    "rtx4090": ("NVIDIA GeForce RTX 4090", 24, True), "cpu": ("this machine's RAM", None, False),
}
# dense bf16 matmul peak from the vendors' datasheets, TFLOP/s (a measured H100/H200 sustains ~790)
PEAK_TFLOPS = {"mi300x": 1307, "mi325x": 1307, "mi250": 191, "h100": 989, "h200": 989, "a100-40": 312,
               "a100-80": 312, "rx7900xtx": 123, "rtx4090": 165}
ASSUMED_MFU = 0.35  # the share of that peak a LoRA step of a ~2B model reaches; an assumption, not a measurement
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SUPPORTED = ("llama", "mistral", "qwen2", "qwen3")
SHAPES = Path(__file__).resolve().parent / "resources" / "shapes"


@dataclass(frozen=True)
class Arch:
    """The shape of a Llama-family decoder, read from config.json."""

    model_type: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    tied: bool
    qkv_bias: bool
    qk_norm: bool

    @classmethod
    def from_config(cls, cfg: dict, source: str = "config.json") -> "Arch":
        mt = cfg.get("model_type")
        if mt not in SUPPORTED:
            raise MedtuneError(f"model_type {mt!r} is not supported by the planner (it knows {', '.join(SUPPORTED)})",
                               path=source, field="model_type")
        try:
            h, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
            return cls(model_type=mt, vocab=int(cfg["vocab_size"]), hidden=h, layers=int(cfg["num_hidden_layers"]),
                       heads=heads, kv_heads=int(cfg.get("num_key_value_heads") or heads),
                       head_dim=int(cfg.get("head_dim") or h // heads), intermediate=int(cfg["intermediate_size"]),
                       tied=bool(cfg.get("tie_word_embeddings", False)),
                       qkv_bias=bool(cfg.get("attention_bias", mt == "qwen2")), qk_norm=mt == "qwen3")
        except KeyError as err:
            raise MedtuneError("missing field", path=source, field=str(err.args[0])) from None

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each projection in one layer."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def count_parameters(a: Arch) -> dict[str, int]:
    """Exact parameter counts: embeddings, layers, final norm, untied head, total and linear-only."""
    shapes = a.linear_shapes()
    linear = sum(i * o for i, o in shapes.values())
    bias = (a.heads + 2 * a.kv_heads) * a.head_dim if a.qkv_bias else 0
    norms = 2 * a.hidden + (2 * a.head_dim if a.qk_norm else 0)
    per_layer = linear + bias + norms
    embed = a.vocab * a.hidden
    head = 0 if a.tied else a.vocab * a.hidden
    total = embed + a.layers * per_layer + a.hidden + head
    return {"embedding": embed, "per_layer": per_layer, "layers": a.layers * per_layer, "lm_head": head,
            "linear": a.layers * linear + head, "total": total}


def lora_parameters(a: Arch, r: int, targets: tuple[str, ...] = LINEARS, adapted: int | None = None) -> int:
    """Trainable LoRA parameters: r x (in + out) for each adapted projection of every adapted layer
    (`adapted` layers, lora.layers; every layer when None)."""
    shapes = a.linear_shapes()
    return min(adapted or a.layers, a.layers) * sum(r * (shapes[t][0] + shapes[t][1]) for t in targets)


def activations_per_token(a: Arch, grad_ckpt: bool, lora_dropout: bool, bytes_per: int = 2) -> tuple[float, float]:
    """(bytes kept per token for all layers, bytes of one layer recomputed) for the backward pass;
    `lora_dropout`: an adapter's dropout keeps a copy of every adapted layer's input."""
    h, q, kv, i = a.hidden, a.heads * a.head_dim, a.kv_heads * a.head_dim, a.intermediate
    elems = 4 * h + 2 * q + 2 * kv + 4 * i + ((q + kv) if a.qk_norm else 0)
    extra = 0.0
    if lora_dropout:
        copies = 5 * h + q + i
        extra = copies * bytes_per + copies  # dropout output + boolean mask
    layer = elems * bytes_per + extra
    if grad_ckpt:
        return a.layers * h * bytes_per, layer
    return a.layers * layer, 0.0


@dataclass
class Estimate:
    method: str
    gpu: str
    memory_gib: float | None
    batch: int
    seq_len: int
    grad_ckpt: bool
    parts: dict[str, float]      # GiB
    per_sample_gib: float
    fixed_gib: float

    @property
    def total_gib(self) -> float:
        return sum(self.parts.values())

    @property
    def fits(self) -> bool:
        return self.memory_gib is None or self.total_gib <= self.memory_gib

    def max_batch(self) -> int:
        if self.memory_gib is None:
            return -1
        room = self.memory_gib / 1.05 - self.fixed_gib
        return max(0, math.floor(room / self.per_sample_gib)) if self.per_sample_gib > 0 else 0

    def to_dict(self) -> dict:
        return {"method": self.method, "gpu": self.gpu, "memory_gib": self.memory_gib, "batch": self.batch,
                "seq_len": self.seq_len, "grad_ckpt": self.grad_ckpt, "parts_gib": self.parts,
                "total_gib": self.total_gib, "fits": self.fits, "max_batch": self.max_batch()}


def estimate(a: Arch, method: str, gpu: str = "h100", *, batch: int = 8, seq_len: int = 512,
             grad_ckpt: bool = False, r: int = 16, targets: tuple[str, ...] = LINEARS, lora_dropout: bool = True,
             act_bytes: int = 2, runtime_gib: float = 1.0, memory_gib: float | None = None,
             labelled: int | None = None, adapted: int | None = None) -> Estimate:
    """Peak training memory for one optimizer step, part by part; `adapted`: the layers an adapter
    covers (lora.layers), below which nothing is kept for the backward pass."""
    m = planned_method(method)
    mem = m.memory
    if memory_gib is None and gpu != "cpu":
        memory_gib = GPUS[gpu][1]
    p = count_parameters(a)
    weights = p["total"] * mem.weight_bytes
    if mem.linear_bytes is not None:  # quantized layers; embeddings, norms and the LM head as they were
        layers = p["linear"] - p["lm_head"]
        weights = layers * mem.linear_bytes + (p["total"] - layers) * mem.weight_bytes
    frac = 1.0 if m.trains_all or not adapted else min(adapted, a.layers) / a.layers
    trainable = p["total"] if m.trains_all else lora_parameters(a, r, targets, adapted)
    state = trainable * mem.state_bytes
    if mem.magnitude:  # magnitude vectors, and one layer's adapted weights materialised for the norm
        shapes = a.linear_shapes()
        state += a.layers * sum(shapes[t][1] for t in targets) * 16.0
        weights += sum(i * o for t, (i, o) in shapes.items() if t in targets) * 2.0 * 2
    kept, one_layer = activations_per_token(a, grad_ckpt, lora_dropout and not m.trains_all, act_bytes)
    kept *= frac
    head = min(seq_len, labelled or seq_len)  # positions the LM head runs on
    per_sample = seq_len * (kept + one_layer) + head * a.vocab * 12.0
    fixed = (weights + state) / GIB + runtime_gib
    parts = {"weights": weights / GIB, "trainable_state": state / GIB,
             "activations": batch * seq_len * (kept + one_layer) / GIB,
             "logits": batch * head * a.vocab * 12.0 / GIB, "runtime": runtime_gib}
    slack = 0.05 * sum(parts.values())
    parts["allocator_slack"] = slack
    return Estimate(method, gpu, memory_gib, batch, seq_len, grad_ckpt, parts, per_sample / GIB * 1.05,
                    fixed * 1.05)


def planned_method(name: str) -> Any:
    """The METHODS entry of a method the planner counts (a MedtuneError naming the choices otherwise)."""
    from medtune.train.methods import planned_methods

    planned = planned_methods()
    if name not in planned:
        raise MedtuneError(f"unknown method {name!r}{did_you_mean(name, planned)}; choose from "
                           f"{', '.join(planned)}", field="--method")
    return planned[name]


def load_config(model: str) -> tuple[dict, str]:
    """config.json of a local folder, a shipped shape name (qwen3-1.7b), an embedded model or a Hub id."""
    from medtune.models import EMBEDDED, resolve_model

    shipped = model.split("/")[-1].lower()  # Qwen/Qwen3-1.7B is the shipped shape qwen3-1.7b: no Hub call
    if (SHAPES / model / "config.json").is_file():
        path = SHAPES / model / "config.json"
    elif "/" in model and not Path(model).exists() and (SHAPES / shipped / "config.json").is_file():
        path = SHAPES / shipped / "config.json"
    elif Path(model).is_file() and Path(model).name.endswith(".json"):
        path = Path(model)
    elif Path(model).is_dir():
        path = Path(model) / "config.json"
        if not path.is_file():
            raise MedtuneError("no config.json in this folder", path=model, field="--model")
    elif model in EMBEDDED:
        path = Path(resolve_model(model).path) / "config.json"
    else:
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(model, "config.json"))
        except Exception as err:  # offline, unknown id, gated repo
            raise MedtuneError(f"cannot fetch config.json from the Hub ({type(err).__name__}); pass a local folder "
                               f"or a shipped shape ({', '.join(p.name for p in SHAPES.iterdir())})",
                               path=model, field="--model") from None
    try:
        return json.loads(path.read_text("utf-8")), str(path)
    except ValueError as err:
        raise MedtuneError(f"invalid JSON: {err}", path=str(path)) from None


def cpu_memory_gib() -> float | None:
    """Total RAM in GiB (Linux and macOS), or None."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    except (ValueError, OSError, AttributeError):
        return None


def plan(model: str, method: str, gpu: str, *, batch: int, seq_len: int, grad_ckpt: bool, r: int = 16,
         labelled: int | None = None, layers: Any = None, gpus: int = 1, strategy: str = "ddp") -> dict:
    """The planner's answer for one model, method and GPU (one of `gpus`), with the alternatives."""
    from medtune.train.methods import adapted_layers, planned_methods

    if gpu not in GPUS:
        raise MedtuneError(f"unknown GPU {gpu!r}{did_you_mean(gpu, GPUS)}; choose from {', '.join(GPUS)}",
                           field="--gpu")
    cfg, source = load_config(model)
    a = Arch.from_config(cfg, source)
    adapted = None
    if layers is not None:
        adapted = len(adapted_layers(layers, a.layers))
    mem = cpu_memory_gib() if gpu == "cpu" else None
    act_bytes = 4 if gpu == "cpu" else 2
    others, ests = {}, {}
    planned = planned_methods()
    for m in planned:
        for ck in (False, True):
            e = ests[m, ck] = per_gpu(estimate(a, m, gpu, batch=batch, seq_len=seq_len, grad_ckpt=ck, r=r,
                                               act_bytes=act_bytes, memory_gib=mem, runtime_gib=0.0 if gpu == "cpu"
                                               else 1.0, labelled=labelled, adapted=adapted), gpus, strategy)
            others[f"{m}{' +ckpt' if ck else ''}"] = {"total_gib": e.total_gib, "fits": e.fits,
                                                       "max_batch": e.max_batch()}
    est, fitting = ests[method, grad_ckpt], [m for m in planned if others[m]["fits"]]
    best = sorted(planned, key=lambda m: planned[m].memory.preference)
    return {"time": time_model(a, method, gpu, r, adapted), "model": model, "config": source,
            "architecture": a.__dict__, "parameters": count_parameters(a), "adapted_layers": adapted or a.layers,
            "lora_r": r, "lora_parameters": lora_parameters(a, r, adapted=adapted), "gpus": gpus, "strategy": strategy,
            "estimate": est.to_dict(), "methods": others, "lightest_fitting_method": fitting[0] if fitting else None,
            "best_fitting_method": next((m for m in best if others[m]["fits"]), None), "preference": best}


def time_model(a: Arch, method: str, gpu: str, r: int = 16, adapted: int | None = None) -> dict | None:
    """Seconds per million training tokens at ASSUMED_MFU of the GPU's datasheet bf16 peak; FLOPs per token
    from the method's registry entry (`Method.flops_per_token`, the count `medtune bench train` uses)."""
    if gpu not in PEAK_TFLOPS:
        return None
    flops = planned_method(method).flops_per_token(count_parameters(a)["linear"], a.layers, adapted)
    rate = PEAK_TFLOPS[gpu] * 1e12 * ASSUMED_MFU
    return {"flops_per_token": flops, "peak_tflops": PEAK_TFLOPS[gpu], "assumed_mfu": ASSUMED_MFU,
            "seconds_per_million_tokens": flops * 1e6 / rate}
