"""The limit a bench figure is a fraction of: this machine's matmul rate, measured in the bench's own process.

`bench eval` and `bench train` measure it before and after their timed work (fp32, and bf16 where the CPU
has bf16 instructions: AVX-512 BF16 or AMX), so a figure taken while other jobs share the machine is set
against a limit taken under the same load. The limit is the better of the two measurements; each is kept.

    fraction of peak = FLOPs of the work done per second / measured matmul rate of the run's dtype

Scoring counts 2N per processed token (N: the decoder layers' linear weights; the LM head, which runs only on
the positions a scorer reads, and attention's own products are left out, so the fraction is a lower bound);
training counts the method registry's FLOPs per token (`Method.flops_per_token`, the count `medtune plan`
uses). On a GPU it is MFU.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def sync(device: str) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def cpu_flags() -> set[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def cpu_bf16() -> list[str]:
    """The bf16 matmul instructions this CPU has (AVX-512 BF16, AMX); empty: bf16 is emulated, not measured."""
    return [f for f in BF16_FLAGS if f in cpu_flags()]


def matmul_rate(device: str, dtype: Any, sizes: tuple[int, ...] | None = None, trials: int = 3,
                seconds: float = 0.25) -> dict:
    """FLOP/s of square products on this device in this dtype, measured now (never cached): the best of
    `trials` timings of each size, each timing at least `seconds` long."""
    import torch

    sizes = sizes or ((4096, 8192) if device.startswith("cuda") else (1024, 2048))
    by_size = {}
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        repeats = max(1, int(seconds / max(time.perf_counter() - t0, 1e-6)))
        best = 0.0
        for _ in range(trials):
            sync(device)
            t0 = time.perf_counter()
            for _ in range(repeats):
                a @ b
            sync(device)
            best = max(best, 2 * n ** 3 * repeats / (time.perf_counter() - t0))
        by_size[str(n)] = best
        del a, b
    return {"flops_per_s": max(by_size.values()), "by_size": by_size, "threads": torch.get_num_threads(),
            "load_average": list(os.getloadavg())}


def measure(device: str, dtypes: tuple[str, ...] | None = None) -> dict:
    """The matmul rate of each dtype worth measuring here: fp32 always, bf16 where the CPU (or any GPU) has it."""
    import torch

    if dtypes is None:
        dtypes = ("float32", "bfloat16") if device != "cpu" or cpu_bf16() else ("float32",)
    return {d: matmul_rate(device, getattr(torch, d)) for d in dtypes}


def limit(before: dict, after: dict | None = None) -> dict:
    """Per dtype: the better of the two measurements (before and after the timed work) and both."""
    out = {}
    for d, b in before.items():
        a = (after or {}).get(d)
        out[d] = {"flops_per_s": max(b["flops_per_s"], a["flops_per_s"] if a else 0.0), "before": b, "after": a}
    return out


def fraction(flops_per_s: float, peaks: dict, dtype: str) -> dict:
    """The work's FLOP/s as a fraction of the measured rate of its dtype (and of fp32's, where different)."""
    out = {"flops_per_s": flops_per_s}
    for d in dict.fromkeys((dtype, "float32")):
        if d in peaks:
            out[f"of_{d}_peak"] = flops_per_s / peaks[d]["flops_per_s"]
    return out



def decoder_linear_params(model: Any) -> int:
    """N for scoring: the linear weights of the decoder layers (LoRA and LM head excluded)."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return sum(m.weight.numel() for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and "lora_" not in name and m is not head)
