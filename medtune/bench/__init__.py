"""`medtune bench train|eval RECIPE`: throughput of a recipe's training step and of its evaluation.

Training: the recipe's own model, method, data, template, collator (padding or packing), precision
and batch size; timed steps after warm-up, each ended by a device synchronise; the median step time,
non-padding tokens/s, samples/s and peak memory. Model-FLOPs utilisation (MFU) is

    MFU = tokens/s x FLOPs per token / R

where FLOPs per token is the method registry's count (`Method.flops_per_token`, the one `medtune plan`
prints): forward 2N, activation gradients 2N over the layers the backward pass crosses (lora.layers),
weight gradients 2N more for full training; N the planner's matmul parameters (the layers' linear
weights and an untied LM head). Attention's own products are reported beside it, not counted. R is the
matmul rate measured on this device in the training dtype, not a datasheet figure: on a CPU in the same
process before and after the timed steps, fp32 and bf16 where the CPU has it (`medtune.bench.peak`); on a
GPU the best of 4096^3 and 8192^3 products, and fp8 runs divided by the measured fp8 rate
(`medtune.bench.common.peak_rate`). Evaluation reports the same fraction for 2N FLOPs a processed token.

Evaluation: questions/s of the recipe's eval scorer, with the shared-prefix cache and without it; tokens/s
counts the tokens that ran through the model (the shared prefix once, no padding), and the questions' own
tokens are reported beside it; whether the two runs predict the same letters, a difference counted as a
flip only beyond the dtype's tie tolerance (`TIE_TOLERANCE`).

Each run applies its recipe's `env:` before torch is imported. With `--vs` each recipe runs in its own
process, so its environment and its peak memory are its own (under a launcher: the same process, with the
peak counters reset between runs).

`--shape qwen3-1.7b` builds that architecture with random weights (no download): speed and memory are
real, accuracy is meaningless.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError


def format_bench(r: dict) -> str:
    """A bench result as the table the CLI prints."""
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
                          f"{'fraction of peak':<22}{r['mfu']:>10.1%}  ({r['flops_per_token'] / 1e6:.0f} MFLOP a "
                          f"token, {r['flops_formula']}; {r['matmul_rate_of']}: "
                          f"{r['matmul_rate_flops'] / 1e9:.1f} GFLOP/s)"])
    procs = f" · {r['processes']} processes × {r['threads']} threads" if r.get("processes", 1) > 1 else ""
    lines = [head, f"{r['questions']} questions · {r['scorer']} scorer · batch {r['batch_size']} · "
                   f"shared prefix {r['shared_prefix_tokens']} tokens · {r.get('question_tokens', 0):,} question "
                   f"tokens{procs}"]
    for label in ("prefix_cache", "no_prefix_cache"):
        if label in r:
            x = r[label]
            lines.append(f"{label:<18}{x['seconds']:>8.1f} s {x['questions_per_s']:>8.2f} q/s "
                         f"{x['tokens_per_s']:>9.0f} tok/s processed ({x.get('processed_tokens', 0):,} tokens)"
                         + _fraction(x.get("fraction_of_peak")))
    if "speedup" in r:
        lines.append(f"speed-up {r['speedup']:.2f}x · identical predictions {r['identical_predictions']}/"
                     f"{r['questions']} · flips beyond the tie tolerance {r.get('flips_beyond_tolerance', 0)} · "
                     f"max |Δ log-likelihood| {r['max_abs_loglik_difference']:.2e}")
    if "reference" in r:
        ref = r["reference"]
        lines.append(f"identical to {ref['path']}: {ref['identical_predictions']}/{ref['compared']}")
    return "\n".join(lines)


def _fraction(f: dict | None) -> str:
    """' · 41% of the fp32 peak …' for a run's fraction_of_peak record."""
    if not f:
        return ""
    parts = [f"{v:.0%} of the {k[3:-5]} peak" for k, v in f.items() if k.startswith("of_")]
    return f" · {f['flops_per_s'] / 1e9:.1f} GFLOP/s, " + ", ".join(parts)


def run_one(kind: str, recipe_path: str | None, overrides: list[str], kwargs: dict) -> dict:
    """One bench in this process: the recipe's env first, then a fresh peak-memory count, then the run."""
    from medtune.train.recipe import load_recipe

    from medtune.train.run import apply_env

    recipe = load_recipe(recipe_path, overrides)
    apply_env(recipe)
    from medtune.bench.common import reset_memory

    reset_memory(kwargs.get("device") or "cuda")
    if kind == "train":
        from medtune.bench.train import bench_train as fn
    else:
        from medtune.bench.eval import bench_eval as fn
    r = fn(recipe, **kwargs)
    r["recipe"] = recipe_path
    r["env"] = dict(recipe.env)
    return r


def run_separately(kind: str, recipe_path: str | None, overrides: list[str], kwargs: dict) -> dict:
    """`run_one` in a fresh Python process: its own environment, its own peak memory (device and host)."""
    with tempfile.TemporaryDirectory(prefix="medtune-bench-") as tmp:
        job, out = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job.write_text(json.dumps({"kind": kind, "recipe": recipe_path, "overrides": overrides, "kwargs": kwargs,
                                   "out": str(out)}))
        proc = subprocess.run([sys.executable, "-c", "import sys; from medtune.bench import child_main; "
                               "sys.exit(child_main(sys.argv[1]))", str(job)])
        if not out.is_file():
            raise MedtuneError(f"the bench of this recipe ended without a result (exit code {proc.returncode})",
                               path=recipe_path or "default")
        got = json.loads(out.read_text())
    if "error" in got:
        e = got["error"]
        raise MedtuneError(e["message"], path=e["path"], line=e["line"], field=e["field"])
    return got["result"]


def child_main(job_file: str) -> int:
    """Entry of the process `run_separately` starts."""
    job = json.loads(Path(job_file).read_text())
    try:
        doc = {"result": run_one(job["kind"], job["recipe"], job["overrides"], job["kwargs"])}
    except MedtuneError as err:
        doc = {"error": {"message": err.message, "path": err.path, "line": err.line, "field": err.field}}
    Path(job["out"]).write_text(json.dumps(doc))
    return 0


def run_bench(kind: str, recipe_path: str | None, overrides: list[str], *, out: str | None = None,
              vs: str | None = None, **kwargs: Any) -> list[dict]:
    """Run one bench (or two recipes, each alone: --vs) and write JSON."""
    from medtune.backend import processes
    from medtune.io import atomic_write_json
    from medtune.manifest import cpu_model, git_commit, package_versions

    results = []
    rank, world = processes()
    first = rank == 0  # under a launcher, the first process prints and writes
    paths = [recipe_path] + ([vs] if vs else [])
    for path in paths:
        if len(paths) > 1 and world == 1:
            r = run_separately(kind, path, overrides, kwargs)
        else:
            r = run_one(kind, path, overrides, kwargs)
        results.append(r)
        if first:
            print(format_bench(r), flush=True)
    if not first:
        return results
    doc: dict = {"what": f"medtune bench {kind}", "command": " ".join(["medtune", *sys.argv[1:]]),
                 "processes": world,  # > 1: started by torchrun / accelerate launch
                 "separate_processes": len(paths) > 1 and world == 1,
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
