"""`medtune demo`: wall time and peak memory as a new user meets them, and where the memory goes.

    python benchmarks/demo_profile.py time   [--rev REV] [--out benchmarks/results/demo-time-rss.json]
    python benchmarks/demo_profile.py phases [--out benchmarks/results/demo-memory-phases.json] [key=value ...]

`time`: runs `/usr/bin/time -v python -m medtune demo` with an empty model cache (so the first-run GGUF
conversion is included, as on a fresh clone) in a fresh process, and records wall time, peak RSS and
the demo's own numbers. With --rev REV the same is done first for that commit (a `git worktree`), so
before and after come from the same machine in the same run.

`phases`: runs the demo in this process and records the peak resident memory of each phase (Linux:
VmHWM, reset between phases through /proc/self/clear_refs): set-up and model load, baseline scoring,
adapter + tokenization + Trainer, training, saving, final scoring, summary.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _vm(field: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) / 2 ** 20  # GB


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def phases(overrides: list[str]) -> dict:
    """Peak RSS per phase of run_train on the demo recipe."""
    import medtune.train.run as R
    from medtune.train.recipe import load_recipe

    rows: list[dict] = []

    def wrap(name: str) -> None:
        fn = getattr(R, name)

        def timed(*a, **k):
            _reset_peak()
            t0 = time.perf_counter()
            out = fn(*a, **k)
            rows.append({"phase": name, "seconds": time.perf_counter() - t0, "peak_rss_gb": _vm("VmHWM"),
                         "rss_after_gb": _vm("VmRSS")})
            print(rows[-1], flush=True)
            return out
        setattr(R, name, timed)

    for name in ("set_up", "score_baseline", "make_trainer", "train", "save_trained", "score_final", "summarize"):
        wrap(name)
    recipe = load_recipe("demo-cpu", ["output_dir=/tmp/medtune-demo-phases", *overrides])
    R.run_train(recipe)
    return {"phases": rows, "overrides": overrides}


def timed_demo(cwd: Path, cache: Path) -> dict:
    """/usr/bin/time -v python -m medtune demo in `cwd` with an empty MEDTUNE_CACHE."""
    env = {**os.environ, "MEDTUNE_CACHE": str(cache), "PYTHONPATH": str(cwd)}
    out = Path(tempfile.mkdtemp(prefix="medtune-demo-out-"))
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "medtune", "demo", f"output_dir={out}"],
                          cwd=cwd, env=env, capture_output=True, text=True)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr).group(1)
    parts = [float(x) for x in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) / 2 ** 20
    lines = [x for x in proc.stdout.splitlines() if re.match(r"(letter|step \d+/\d+|letters:|Accuracy|A real|"
                                                               r"No significant|The trained)", x)]
    return {"rc": proc.returncode, "wall_s": seconds, "peak_rss_gb": rss, "lines": lines,
            "load_avg_after": os.getloadavg()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["time", "phases"])
    ap.add_argument("--rev", help="also time this earlier commit, first (same machine, same run)")
    ap.add_argument("--out")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_intermixed_args()
    import platform

    doc: dict = {"command": "python " + " ".join(sys.argv), "cores": os.cpu_count(), "machine": platform.machine(),
                 "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                          text=True).stdout.strip()}
    if args.mode == "phases":
        doc.update(phases(args.overrides))
        out = args.out or ROOT / "benchmarks" / "results" / "demo-memory-phases.json"
    else:
        if args.rev:
            tree = Path(tempfile.mkdtemp(prefix="medtune-rev-")) / "tree"
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.rev], cwd=ROOT, check=True)
            doc["before"] = {"rev": args.rev, **timed_demo(tree, Path(tempfile.mkdtemp()))}
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
        doc["after"] = timed_demo(ROOT, Path(tempfile.mkdtemp()))
        out = args.out or ROOT / "benchmarks" / "results" / "demo-time-rss.json"
    Path(out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
