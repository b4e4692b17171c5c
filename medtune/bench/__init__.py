"""`medtune bench train|eval RECIPE`: throughput of a recipe's training step and of its evaluation.

Training: the recipe's own model, method, data, template, collator (padding or packing), precision
and batch size; timed steps after warm-up, each ended by a device synchronise; the median step time,
non-padding tokens/s, samples/s and peak memory. Model-FLOPs utilisation (MFU) is

    MFU = tokens/s x FLOPs per token / R

where FLOPs per token = k x N + k x 2 x layers x s x d_attn, N the parameters of the matmuls a token
passes (all linear layers and the LM head, not the embedding lookup), s the mean sequence length,
d_attn = heads x head_dim, and k = 4 for adapter methods (forward 2N plus activation gradients 2N;
no weight gradients), 6 for full training; R is the matmul rate measured on this device in the
training dtype (a square matmul of 4096 on a GPU, 2048 on a CPU), not a datasheet figure.

Evaluation: questions/s and non-padding tokens/s of the recipe's eval scorer, with the shared-prefix
cache and without it, and whether the two give identical predictions.

`--shape qwen3-1.7b` builds that architecture with random weights (no download): speed and memory are
real, accuracy is meaningless.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

def format_bench(r: dict) -> str:
    be = r["backend"]
    head = f"{r['kind']} · {r['model']} · {be['kind']} {be['name']}"
    if r["kind"] == "train":
        mem = r["memory"]
        peak = mem.get("device_peak_allocated_gb", mem["host_peak_rss_gb"])
        return "\n".join([head,
                          f"{r['method']} {r['precision']} · batch {r['batch_size']} x {r['grad_accum']} · "
                          f"packing {r['packing']} · grad ckpt {r['gradient_checkpointing']}",
                          f"{'step (median)':<22}{r['step_s_median'] * 1000:>10.1f} ms",
                          f"{'tokens/s (non-pad)':<22}{r['tokens_per_s']:>10.0f}",
                          f"{'samples/s':<22}{r['samples_per_s']:>10.2f}",
                          f"{'padding':<22}{r['padding_fraction']:>10.1%}",
                          f"{'peak memory':<22}{peak:>10.2f} GB",
                          f"{'MFU':<22}{r['mfu']:>10.1%}  ({r['flops_formula']}; matmul rate "
                          f"{r['matmul_rate_flops'] / 1e12:.2f} TFLOP/s measured)"])
    procs = f" · {r['processes']} processes × {r['threads']} threads" if r.get("processes", 1) > 1 else ""
    lines = [head, f"{r['questions']} questions · {r['scorer']} scorer · batch {r['batch_size']} · "
                   f"shared prefix {r['shared_prefix_tokens']} tokens{procs}"]
    for label in ("prefix_cache", "no_prefix_cache"):
        if label in r:
            x = r[label]
            lines.append(f"{label:<18}{x['seconds']:>8.1f} s {x['questions_per_s']:>8.2f} q/s "
                         f"{x['tokens_per_s']:>9.0f} tok/s")
    if "speedup" in r:
        lines.append(f"speed-up {r['speedup']:.2f}x · identical predictions {r['identical_predictions']}/"
                     f"{r['questions']} · max |Δ log-likelihood| {r['max_abs_loglik_difference']:.2e}")
    if "reference" in r:
        ref = r["reference"]
        lines.append(f"identical to {ref['path']}: {ref['identical_predictions']}/{ref['compared']}")
    return "\n".join(lines)


def run_bench(kind: str, recipe_path: str | None, overrides: list[str], *, out: str | None = None,
              vs: str | None = None, **kwargs: Any) -> list[dict]:
    """Run one bench (or two recipes in the same process: --vs) and write JSON."""
    from medtune.backend import processes
    from medtune.train.recipe import load_recipe
    from medtune.io import atomic_write_json
    from medtune.manifest import cpu_model, git_commit, package_versions

    results = []
    rank, world = processes()
    first = rank == 0  # under a launcher, the first process prints and writes
    for path in [recipe_path] + ([vs] if vs else []):
        recipe = load_recipe(path, overrides)
        if kind == "train":
            from medtune.bench.train import bench_train as fn
        else:
            from medtune.bench.eval import bench_eval as fn
        r = fn(recipe, **kwargs)
        r["recipe"] = path
        results.append(r)
        if first:
            print(format_bench(r), flush=True)
    if not first:
        return results
    doc: dict = {"what": f"medtune bench {kind}", "command": " ".join(["medtune", *sys.argv[1:]]),
                 "processes": world,  # > 1: started by torchrun / accelerate launch
                 "commit": git_commit(), "versions": package_versions(), "cpu": cpu_model(), "cores": os.cpu_count(),
                 "results": [dataclasses.asdict(r) if dataclasses.is_dataclass(r) else r for r in results]}
    if vs:
        keys = ("tokens_per_s", "samples_per_s") if kind == "train" else ()
        if keys:
            doc["ratio"] = {k: results[0][k] / results[1][k] for k in keys}
            print(f"ratio {Path(recipe_path or 'default').stem} / {Path(vs).stem}: "
                  + ", ".join(f"{v:.2f}x {k}" for k, v in doc["ratio"].items()))
    if out:
        atomic_write_json(out, doc)
        print(f"medtune: wrote {out}")
    return results


