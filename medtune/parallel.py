"""Data-parallel strategies as the memory planner sees them: what each GPU holds."""

from __future__ import annotations

import dataclasses
from typing import Any

from medtune.errors import MedtuneError, did_you_mean

# how a data-parallel strategy places the weights and the trainable state (gradients, optimizer moments):
# replicated on every GPU (ddp), or sharded 1/N per GPU (fsdp full-shard, DeepSpeed ZeRO-3)
STRATEGIES = {"ddp": False, "fsdp": True, "zero3": True}


def per_gpu(e: Any, gpus: int, strategy: str) -> Any:
    """The estimate for one of `gpus` GPUs under a strategy: activations and logits are each GPU's own
    micro-batch; weights and trainable state are divided by `gpus` where the strategy shards them (the one
    layer FSDP/ZeRO-3 gathers whole at a time is not added)."""
    if strategy not in STRATEGIES:
        raise MedtuneError(f"unknown strategy {strategy!r}{did_you_mean(strategy, STRATEGIES)}; choose "
                           f"{', '.join(STRATEGIES)}", field="--strategy")
    if gpus < 1:
        raise MedtuneError(f"must be at least 1, got {gpus}", field="--gpus")
    if not STRATEGIES[strategy] or gpus == 1:
        return e
    parts = {k: v for k, v in e.parts.items() if k != "allocator_slack"}
    sharded = (parts["weights"] + parts["trainable_state"]) * (1 - 1 / gpus)
    parts["weights"] /= gpus
    parts["trainable_state"] /= gpus
    parts["allocator_slack"] = 0.05 * sum(parts.values())
    return dataclasses.replace(e, parts=parts, fixed_gib=e.fixed_gib - sharded * 1.05)


def on_gpus(gpus: int, strategy: str) -> str:
    """", one of 8 GPUs (fsdp)" for a plan over several GPUs, "" for one."""
    return f", one of {gpus} GPUs ({strategy})" if gpus > 1 else ""
