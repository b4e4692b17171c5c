"""Where a big model's weights go: split across GPUs, CPU memory and disk by accelerate's big-model
inference (`--device-map`, `--max-memory`)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from medtune.errors import MedtuneError, did_you_mean
from medtune.io import cache_dir

DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B)?", re.IGNORECASE)


@dataclass(frozen=True)
class Placement:
    """A model split across devices, CPU memory and disk by accelerate's big-model inference: the strategy
    (`device_map`) and each device's budget (`max_memory`: GPU index, "cpu" or "mps" -> size)."""

    device_map: str
    max_memory: dict | None = None


def placement(device_map: str | None, max_memory: list[str] | None = None) -> Placement | None:
    """The Placement that --device-map and --max-memory describe (None: the whole model on one device)."""
    if device_map is None:
        if max_memory:
            raise MedtuneError("--max-memory budgets a split model: give --device-map auto (or balanced) too",
                               field="--max-memory")
        return None
    if device_map not in DEVICE_MAPS:
        raise MedtuneError(f"unknown device map {device_map!r}{did_you_mean(device_map, DEVICE_MAPS)}; choose "
                           f"{', '.join(DEVICE_MAPS)}", field="--device-map")
    budget: dict = {}
    for entry in max_memory or []:
        key, _, size = entry.partition("=")
        if not (key.isdigit() or key in ("cpu", "mps")) or not _SIZE.fullmatch(size.strip()):
            raise MedtuneError(f"expected DEVICE=SIZE such as 0=70GiB, cpu=200GiB or mps=30GiB, got {entry!r}",
                               field="--max-memory")
        budget[int(key) if key.isdigit() else key] = size.strip()
    return Placement(device_map, budget or None)


def offload_folder() -> str:
    """A folder of this process's own for weights offloaded to disk, removed at exit."""
    import atexit

    root = cache_dir() / "offload"
    root.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root)
    atexit.register(shutil.rmtree, folder, True)
    return folder


def where(model: Any) -> str:
    """How many of a split model's modules sit on each device, e.g. "cuda:0 14 · cpu 2 · disk 20"."""
    counts: dict[str, int] = {}
    if not getattr(model, "hf_device_map", None):
        return f"all on {next(model.parameters()).device}"
    for device in model.hf_device_map.values():
        name = f"cuda:{device}" if isinstance(device, int) else str(device)
        counts[name] = counts.get(name, 0) + 1
    return " · ".join(f"{k} {n}" for k, n in counts.items())
