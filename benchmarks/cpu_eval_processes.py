"""One process with every core against one process per core (torchrun), repeated in turns.

Each setting is a whole `medtune bench eval` run (letter scorer, prefix cache, no uncached pass) on the
same questions, started fresh each time; the settings alternate A B C A B C ... so that a drift in the
machine's speed hits all of them. Every run's predictions are checked against a recorded eval.

usage: python benchmarks/cpu_eval_processes.py OUT.json [--recipe demo-cpu] [--rounds 3]
           [--reference runs/demo/baseline] [--data SOURCE ...] [--limit N] [--settings 1x16 2x8 2x16]
           [--foundation REV]

A setting PxB is P processes (P = 1: all threads in one process; P > 1: torchrun, one thread each) at
batch B per process. `--foundation REV` adds, in the same turns, medtune's own `eval` as it was at
commit REV (extracted with `git archive`, run from that tree with its default CPU settings: one process,
batch 8, letter scorer) on the same questions and model: a same-run measurement of the speed-up since.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from medtune.manifest import cpu_model, git_commit, package_versions


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def printed(row: dict) -> dict:
    """One run's line on the terminal; the row itself back."""
    print(f"{row['setting']:>6}: {row['questions_per_s']:6.2f} q/s ({row['seconds']:.1f} s)"
          + (f", identical to the reference {row['identical_to_reference']}/{row['compared_with_reference']}"
             if "identical_to_reference" in row else ""), flush=True)
    return row


def run_setting(setting: str, recipe: str, reference: str | None, data: list[str] | None, out: Path,
                limit: int | None = None) -> dict:
    procs, batch = (int(x) for x in setting.split("x"))
    args = ["bench", "eval", recipe, "--no-compare", "--batch-size", str(batch), "--out", str(out)]
    if limit:
        args += ["--limit", str(limit)]
    if reference:
        args += ["--reference", reference]
    if data:
        args += ["--data", *data]
    if procs == 1:
        cmd = [sys.executable, "-m", "medtune", *args]
        env = dict(os.environ)
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
               "--master_addr", "127.0.0.1", "--master_port", str(_port()), "-m", "medtune", *args]
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or procs) // procs))}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{setting}: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    r = json.loads(out.read_text())["results"][0]
    row = {"setting": setting, "processes": r["processes"], "threads_per_process": r["threads"],
           "batch_size": batch, "questions": r["questions"], "seconds": r["prefix_cache"]["seconds"],
           "questions_per_s": r["prefix_cache"]["questions_per_s"], "predictions": r["predictions"]}
    if "reference" in r:
        row["identical_to_reference"] = r["reference"]["identical_predictions"]
        row["compared_with_reference"] = r["reference"]["compared"]
    return printed(row)


def extract(rev: str, dest: Path) -> Path:
    """medtune's source tree at commit `rev` (read-only use: nothing is installed)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def heldout_file(recipe: str, dest: Path) -> Path:
    """The recipe's held-out eval questions as a medtune JSONL file, for code that predates --recipe."""
    from medtune.train.recipe import load_recipe
    from medtune.io import atomic_write_jsonl
    from medtune.train.trainset import load_questions

    evals = load_questions(load_recipe(recipe, [])).evals
    atomic_write_jsonl(dest, (it.to_dict() for it in evals))
    return dest


def run_foundation(rev: str, tree: Path, model: str, data: list[str], reference: str | None, out: Path,
                   limit: int | None = None) -> dict:
    """One `medtune eval` of the code at `rev`: its own timing of the letter scorer (model load excluded)."""
    cmd = [sys.executable, "-m", "medtune", "eval", "--model", model, "--data", *data, "--scorer", "letter",
           "--batch-size", "8", "--out", str(out)] + (["--limit", str(limit)] if limit else [])
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("OMP_NUM_THREADS", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
    if proc.returncode != 0:
        sys.exit(f"{rev}: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    from medtune.eval.compare import read_predictions

    mine = read_predictions(out / "predictions.jsonl")
    seconds = metrics["timing"]["per_scorer_s"]["letter"]
    row = {"setting": f"foundation@{rev}", "processes": 1, "threads_per_process": os.cpu_count(),
           "batch_size": 8, "questions": len(mine), "seconds": seconds,
           "questions_per_s": len(mine) / seconds, "predictions": [r["predicted"] for r in mine.values()]}
    if reference:
        ref = read_predictions(Path(reference) / "predictions.jsonl")
        row["identical_to_reference"] = sum(ref[i]["predicted"] == r["predicted"] for i, r in mine.items() if i in ref)
        row["compared_with_reference"] = sum(i in ref for i in mine)
    return printed(row)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--recipe", default="demo-cpu")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reference", help="a recorded eval folder of the same questions")
    ap.add_argument("--data", nargs="+", help="these questions instead of the recipe's eval questions")
    ap.add_argument("--settings", nargs="+", default=["1x16", "2x8", "2x16"])
    ap.add_argument("--foundation", metavar="REV", help="also time medtune's eval as it was at this commit")
    ap.add_argument("--limit", type=int, help="the first N questions of --data (or of the recipe's)")
    args = ap.parse_args()

    rows = []
    names = list(args.settings)
    with tempfile.TemporaryDirectory() as tmp:
        if args.foundation:
            from medtune.train.recipe import load_recipe

            tree = extract(args.foundation, Path(tmp) / "foundation")
            data = args.data or [str(heldout_file(args.recipe, Path(tmp) / "heldout.jsonl"))]
            model = load_recipe(args.recipe, []).model.name
            names.insert(0, f"foundation@{args.foundation}")
        for k in range(args.rounds):
            if args.foundation:
                rows.append({"round": k, **run_foundation(args.foundation, tree, model, data, args.reference,
                                                          Path(tmp) / f"foundation-{k}", args.limit)})
            for s in args.settings:
                rows.append({"round": k, **run_setting(s, args.recipe, args.reference, args.data,
                                                       Path(tmp) / f"{s}-{k}.json", args.limit)})
    first = rows[0]["predictions"]
    summary = {}
    for s in names:
        mine = [r for r in rows if r["setting"] == s]
        qps = [r["questions_per_s"] for r in mine]
        summary[s] = {"questions_per_s_median": statistics.median(qps), "min": min(qps), "max": max(qps),
                      "identical_to_first_run": min(sum(a == b for a, b in zip(r["predictions"], first))
                                                    for r in mine)}
        print(f"{s:>6}: median {summary[s]['questions_per_s_median']:.2f} q/s (min {min(qps):.2f}, max "
              f"{max(qps):.2f}) over {len(qps)} runs")
    for r in rows:
        del r["predictions"]
    if args.foundation:
        base = summary[names[0]]["questions_per_s_median"]
        for s in args.settings:
            summary[s]["speedup_vs_foundation"] = summary[s]["questions_per_s_median"] / base
            print(f"{s:>6}: {summary[s]['speedup_vs_foundation']:.2f}x {names[0]} (medians, same turns)")
    doc = {"what": "medtune bench eval: one process with every core vs one process per core (torchrun)"
                   + (f", and medtune eval at {args.foundation}" if args.foundation else ""),
           "command": "python benchmarks/cpu_eval_processes.py " + " ".join(sys.argv[1:]),
           "commit": git_commit(), "versions": package_versions(),
           "device": {"cpu": cpu_model(), "cores": os.cpu_count()},
           "recipe": args.recipe, "questions": rows[0]["questions"], "summary": summary, "runs": rows}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
