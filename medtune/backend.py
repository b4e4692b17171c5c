"""Which device and dtype to run on. Decided once at start-up and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medtune.errors import MedtuneError

DTYPES = ("auto", "float32", "bfloat16", "float16")


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


def select_backend(device: str | None = None, dtype: str = "auto") -> Backend:
    """Pick the device (default: the first GPU, else CPU) and a dtype it runs well."""
    import torch

    if dtype not in DTYPES:
        raise MedtuneError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}", field="--dtype")
    requested = (device or "auto").lower()
    has_gpu = torch.cuda.is_available()
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        requested = "cuda" if has_gpu else "mps" if has_mps else "cpu"
    if requested.startswith(("cuda", "rocm", "hip")):
        if not has_gpu:
            raise MedtuneError(f"device {requested!r} asked for, but torch sees no GPU "
                               f"(torch {torch.__version__}); run `medtune doctor`", field="--device")
        dev = "cuda" + requested[requested.index(":"):] if ":" in requested else "cuda"
        kind = "rocm" if getattr(torch.version, "hip", None) else "cuda"
        name = torch.cuda.get_device_name(torch.device(dev))
        bf16 = torch.cuda.is_bf16_supported()
        auto = "bfloat16" if bf16 else "float16"
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
