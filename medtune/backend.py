"""Which device and dtype to run on, what the machine offers, and what to change.

Everything here takes `torch` and the environment as arguments where it inspects them, so that the
ROCm and CUDA branches are tested with fakes (no GPU is needed to test them). Device and dtype are
decided once at start-up and passed down to training, evaluation and serving.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping

from medtune.errors import MedtuneError

# the one spelling users write (CLI, YAML), and the torch dtype each names; the long names are still
# accepted for one release, with a deprecation line
PRECISIONS = {"auto": "auto", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
DTYPES = ("auto", "float32", "bfloat16", "float16")
VISIBILITY_VARS = ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
ROCM_VARS = ("HSA_OVERRIDE_GFX_VERSION", "PYTORCH_HIP_ALLOC_CONF", "PYTORCH_TUNABLEOP_ENABLED",
             "PYTORCH_TUNABLEOP_MAX_TUNING_DURATION_MS", "PYTORCH_TUNABLEOP_MAX_TUNING_ITERATIONS",
             "TORCH_BLAS_PREFER_HIPBLASLT", "HIP_FORCE_DEV_KERNARG", "NCCL_MIN_NCHANNELS")
CUDA_VARS = ("PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF", "NCCL_P2P_DISABLE", "CUDA_LAUNCH_BLOCKING")

# gfx targets that ROCm's PyTorch builds ship kernels for (so no override is needed), and the override
# that makes a close, unsupported consumer chip use one of them.
GFX_NAMES = {"gfx942": "MI300X/MI300A/MI325X", "gfx950": "MI350X/MI355X", "gfx90a": "MI210/MI250/MI250X",
             "gfx908": "MI100", "gfx1100": "RX 7900 XTX/XT, PRO W7900", "gfx1101": "RX 7800 XT/7700 XT",
             "gfx1102": "RX 7600", "gfx1030": "RX 6800/6900, PRO W6800"}
BF16_GFX_PREFIXES = ("gfx90a", "gfx94", "gfx95", "gfx11", "gfx12")
FP8_GFX_PREFIXES = ("gfx94", "gfx95")  # CDNA3 (MI300X/MI325X) and CDNA4 (MI350X/MI355X); not gfx90a, not RDNA
# optional modules: the extra that installs each (pip install "medtune[EXTRA]")
EXTRAS = {"datasets": "hub", "pyarrow": "parquet", "gguf": "embedded", "matplotlib": "plots",
          "tensorboard": "logs", "gradio": "serve", "fastapi": "serve", "uvicorn": "serve", "trl": "rl"}


def need(module: str, purpose: str, *, extra: str | None = None, field: str | None = None,
         path: str | None = None) -> Any:
    """Import an optional module, or stop with one line naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        extra = extra or EXTRAS.get(module.split(".")[0], "all")
        raise MedtuneError(f"{purpose} needs {module.split('.')[0]}, which is not installed: "
                           f"pip install \"medtune[{extra}]\"", field=field, path=path) from None


def have(module: str) -> bool:
    """Whether an optional module can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@dataclass
class Backend:
    """The chosen device, its kind and the compute dtype."""

    kind: str      # rocm | cuda | mps | cpu
    device: str    # torch device string
    dtype: str     # float32 | bfloat16 | float16
    name: str      # human-readable device name
    threads: int

    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def gfx_of(props: Any) -> str | None:
    """'gfx942' from a ROCm device's gcnArchName ('gfx942:sramecc+:xnack-'); None elsewhere."""
    arch = getattr(props, "gcnArchName", None)
    return arch.split(":")[0] if arch else None


def bf16_supported(kind: str, props: Any) -> bool:
    """bf16 matmuls in hardware: NVIDIA from Ampere (sm_80), AMD CDNA2+/RDNA3+."""
    if kind == "cuda":
        return getattr(props, "major", 0) >= 8
    if kind == "rocm":
        gfx = gfx_of(props) or ""
        return gfx.startswith(BF16_GFX_PREFIXES)
    return kind == "cpu"


def fp8_supported(kind: str, props: Any) -> bool:
    """FP8 matrix cores: NVIDIA from Ada/Hopper (sm_89, sm_90+), AMD gfx942/gfx950 (MI300-, MI350-class) only;
    gfx90a (MI200) and RDNA (gfx11, gfx12 consumer cards) have none that torch's fp8 training uses."""
    if kind == "cuda":
        return (getattr(props, "major", 0), getattr(props, "minor", 0)) >= (8, 9)
    if kind == "rocm":
        return (gfx_of(props) or "").startswith(FP8_GFX_PREFIXES)
    return False


def _devices(torch: Any, kind: str) -> list[dict]:
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        d = {"index": i, "name": p.name, "memory_gib": round(p.total_memory / 2 ** 30, 1),
             "bf16": bf16_supported(kind, p), "fp16": True, "fp8": fp8_supported(kind, p)}
        if kind == "rocm":
            gfx = gfx_of(p)
            d.update(gfx=gfx, family=GFX_NAMES.get(gfx), multiprocessors=getattr(p, "multi_processor_count", None))
        else:
            d.update(compute_capability=f"{p.major}.{p.minor}", sm=f"sm_{p.major}{p.minor}",
                     multiprocessors=getattr(p, "multi_processor_count", None))
        out.append(d)
    return out


def _package(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def optional_accelerators(kind: str) -> dict:
    """Optional packages: installed version (or None) and, for bitsandbytes, which backend it has."""
    info: dict[str, Any] = {}
    for dist in ("bitsandbytes", "flash-attn", "liger-kernel", "vllm", "triton", "deepspeed", "torchao"):
        info[dist] = _package(dist) if dist != "flash-attn" else (_package("flash-attn") or _package("flash_attn"))
    bnb = info["bitsandbytes"]
    if bnb:
        spec = importlib.util.find_spec("bitsandbytes")
        folder = os.path.dirname(spec.origin) if spec and spec.origin else ""
        libs = [f for f in os.listdir(folder) if f.startswith("libbitsandbytes")] if folder else []
        info["bitsandbytes_backends"] = sorted({("rocm" if "rocm" in f or "hip" in f else "cuda" if "cuda" in f
                                                 else "cpu") for f in libs})
    return info


def sdpa_kernels(torch: Any, kind: str) -> dict:
    """Which scaled-dot-product-attention kernels torch may use."""
    if kind not in ("cuda", "rocm"):
        return {"math": True}
    b = torch.backends.cuda
    out = {"flash": b.flash_sdp_enabled(), "mem_efficient": b.mem_efficient_sdp_enabled(),
           "math": b.math_sdp_enabled()}
    if hasattr(b, "cudnn_sdp_enabled"):
        out["cudnn"] = b.cudnn_sdp_enabled()
    return out


def detect(torch: Any = None, environ: Mapping[str, str] | None = None) -> dict:
    """The machine as torch sees it: backend kind, devices, dtypes, variables, optional packages."""
    if torch is None:
        import torch as _torch

        torch = _torch
    env = os.environ if environ is None else environ
    hip = getattr(torch.version, "hip", None)
    cuda = getattr(torch.version, "cuda", None)
    gpu = bool(torch.cuda.is_available())
    mps = bool(getattr(getattr(torch.backends, "mps", None), "is_available", lambda: False)())
    kind = ("rocm" if hip else "cuda") if gpu else ("mps" if mps else "cpu")
    report = {
        "kind": kind,
        "torch": torch.__version__,
        "torch_build": "rocm" if hip else "cuda" if cuda else "cpu",
        "hip_version": hip, "cuda_version": cuda,
        "gpu_available": gpu,
        "devices": _devices(torch, kind) if gpu else [],
        "cpu_threads": torch.get_num_threads(),
        "environment": {k: env.get(k) for k in (*VISIBILITY_VARS, *ROCM_VARS, *CUDA_VARS) if env.get(k) is not None},
        "optional": optional_accelerators(kind),
        "sdpa": sdpa_kernels(torch, kind),
        "compile": {"torch_compile": hasattr(torch, "compile"), "triton": _package("triton") is not None},
        # the gfx/sm targets this torch build has kernels for (None when the build cannot say)
        "arch_list": list(torch.cuda.get_arch_list()) if gpu and hasattr(torch.cuda, "get_arch_list") else None,
    }
    report["default_dtype"] = ("bfloat16" if report["devices"] and report["devices"][0]["bf16"] else "float16") \
        if gpu else "float32"
    return report


def torch_dtype_name(value: str) -> str:
    """The torch dtype name for a precision as users write it (bf16, fp16, fp32, auto); the long torch
    names (bfloat16, float16, float32) pass too (the CLI prints a deprecation line for them)."""
    if value in PRECISIONS:
        return PRECISIONS[value]
    if value in DTYPES:
        return value
    raise MedtuneError(f"unknown precision {value!r}; choose one of {', '.join(PRECISIONS)}", field="--dtype")


def select_backend(device: str | None = None, dtype: str = "auto") -> Backend:
    """Pick the device (default: the first GPU, else CPU) and a dtype it runs well."""
    import torch

    dtype = torch_dtype_name(dtype)
    requested = (device or "auto").lower()
    has_gpu = torch.cuda.is_available()
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        requested = "cuda" if has_gpu else "mps" if has_mps else "cpu"
    if requested.startswith(("cuda", "rocm", "hip")):
        if not has_gpu:
            raise MedtuneError(f"device {requested!r} asked for, but torch sees no GPU "
                               f"(torch {torch.__version__}); run `medtune doctor`", field="--device")
        dev = "cuda" + requested[requested.index(":"):] if ":" in requested else local_device("cuda")
        kind = "rocm" if getattr(torch.version, "hip", None) else "cuda"
        props = torch.cuda.get_device_properties(torch.device(dev))
        name = props.name
        auto = "bfloat16" if bf16_supported(kind, props) else "float16"
    elif requested == "mps":
        if not has_mps:
            raise MedtuneError("device 'mps' asked for, but torch reports no Apple GPU", field="--device")
        dev, kind, name, auto = "mps", "mps", "Apple MPS", "float16"
    elif requested == "cpu":
        dev, kind, name, auto = "cpu", "cpu", "CPU", "float32"
    else:
        raise MedtuneError(f"unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps", field="--device")
    return Backend(kind=kind, device=dev, dtype=auto if dtype == "auto" else dtype, name=name,
                   threads=torch.get_num_threads())


def processes(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(this process's index, how many processes) when `accelerate launch` or `torchrun` started more
    than one; (0, 1) otherwise. The process group is set up by accelerate (gloo on CPUs, NCCL/RCCL on GPUs)."""
    env = os.environ if environ is None else environ
    if int(env.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # without cpu=True it would not group CPU processes
    return state.process_index, state.num_processes


def local_device(device: str, environ: Mapping[str, str] | None = None) -> str:
    """`cuda` means this process's own GPU (`cuda:LOCAL_RANK`) when a launcher started several."""
    env = os.environ if environ is None else environ
    if device == "cuda" and int(env.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in env:
        return f"cuda:{int(env['LOCAL_RANK'])}"
    return device


def apply_device_env(devices: str | None = None, gfx_override: str | None = None,
                     environ: dict | None = None) -> list[str]:
    """Set device-visibility and gfx-override variables; must run before torch is imported.

    Returns warnings (for example when torch is already imported and the values come too late)."""
    env = os.environ if environ is None else environ
    warnings = []
    if devices is not None:
        if not all(p.strip().isdigit() for p in devices.split(",")):
            raise MedtuneError(f"expected device indices such as 0 or 0,1, got {devices!r}", field="--devices")
        env["CUDA_VISIBLE_DEVICES"] = devices   # NVIDIA, and honoured by HIP too
        env["HIP_VISIBLE_DEVICES"] = devices    # ROCm
        if env.get("ROCR_VISIBLE_DEVICES"):
            warnings.append(f"ROCR_VISIBLE_DEVICES={env['ROCR_VISIBLE_DEVICES']} is set: --devices {devices} "
                            "counts within the devices it leaves visible")
    if gfx_override is not None:
        parts = gfx_override.split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise MedtuneError(f"expected a version such as 11.0.0 or 10.3.0, got {gfx_override!r}",
                               field="--gfx-override")
        env["HSA_OVERRIDE_GFX_VERSION"] = gfx_override
    if (devices is not None or gfx_override is not None) and "torch" in sys.modules:
        warnings.append("torch was imported before the device variables were set: they have no effect in "
                        "this process")
    return warnings


def apply_env(variables: Mapping[str, Any], environ: dict | None = None) -> list[str]:
    """Set a recipe's `env:` variables (before torch is imported); a warning for each that changes a value
    after torch was imported, when it may have no effect in this process."""
    env = os.environ if environ is None else environ
    late = []
    for key, value in variables.items():
        if env.get(str(key)) != str(value) and "torch" in sys.modules:
            late.append(f"{key} set after torch was imported: it may have no effect in this process")
        env[str(key)] = str(value)
    return late


def default_batch_size(backend: Backend) -> int:
    """Questions per scoring pass when none is given (measured with the embedded SmolLM2 on 2 cores,
    benchmarks/NOTES.md): on a CPU 16 for a process with several threads (7.75 q/s against 6.99 at 8 and
    7.37 at 32), 8 for a one-thread process, as under torchrun with one process per core (8.38 q/s
    against 7.92 at 16); 64 on a GPU."""
    if backend.kind != "cpu":
        return 64
    return 8 if backend.threads <= 1 else 16
