"""`medtune data stats`, `data stats --against` and `data split` on a MedMCQA train split at full size.

Generates a Hub-layout MedMCQA file (id, question, opa-opd, cop 0-3, choice_type, exp, subject_name,
topic_name; 182,822 rows by default) and a 4,183-row eval file (half of it edited twins of train rows),
then times each command as a user runs it (`python -m medtune ...`, a fresh process) for the code
before (a git revision, extracted with `git archive`) and after (this tree), alternating before/after
in the same run. Per run: wall seconds, the command's peak RSS (wait4's ru_maxrss) and the peak of
the summed RSS of its process tree (sampled every 20 ms; a forked helper counts here). "after" is
measured cold (empty data cache) and warm (the items cached by the cold run).

usage: python benchmarks/data_scale.py [--rows 182822] [--before a32337a] [--repeats 1] [--quick]
                                       [--out benchmarks/results/data-scale.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medtune.data.synth import generate_rows, plant_twins, write_jsonl  # noqa: E402


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def tree_rss_kb(pid: int) -> tuple[int, int]:
    """Summed RSS and PSS (kB) of a process and its descendants, from /proc. RSS counts a page a
    forked helper shares with its parent twice; PSS splits it between them."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    rss = pss = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


def timed(cmd: list[str], env: dict) -> dict:
    """Run one command; wall time, exit status, ru_maxrss and the sampled tree RSS peak."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/tmp")
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss, pss = tree_rss_kb(proc.pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    t.join()
    return {"wall_s": round(wall, 2), "rc": proc.returncode, "tree_rss_peak_mb": round(peak[0] / 1024),
            "tree_pss_peak_mb": round(peak[1] / 1024),
            "stdout_tail": out.decode(errors="replace")[-400:], "stderr_tail": err.decode(errors="replace")[-400:]}


def timed_rusage(cmd: list[str], env: dict) -> dict:
    """`timed`, plus the peak RSS of the command's own process from GNU time when present."""
    if Path("/usr/bin/time").exists():
        res = timed(["/usr/bin/time", "-f", "MAXRSS_KB=%M CPU_S=%U %S", *cmd], env)
        rss = [line for line in res["stderr_tail"].splitlines() if line.startswith("MAXRSS_KB=")]
        res["peak_rss_mb"] = round(int(rss[-1].split()[0].split("=")[1]) / 1024) if rss else None
        if rss:  # user + system CPU seconds of the command and its helper process: less load-dependent
            user, system = rss[-1].split("=")[2].split()
            res["cpu_s"] = round(float(user) + float(system), 2)
        return res
    return timed(cmd, env)


def make_files(folder: Path, rows: int, eval_rows: int) -> tuple[Path, Path]:
    """The train file and an eval file: half twins of train rows (every kind), half new questions."""
    train = list(generate_rows(rows, seed=0))
    write_jsonl(folder / "train.jsonl", train)
    n_twins = eval_rows // 2
    twins = [t for t, _, _ in plant_twins(train, n_twins, seed=1)]
    fresh = list(generate_rows(eval_rows - n_twins, seed=99))
    write_jsonl(folder / "eval.jsonl", twins + fresh)
    return folder / "train.jsonl", folder / "eval.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=182_822)
    ap.add_argument("--eval-rows", type=int, default=4_183)
    ap.add_argument("--before", default="a32337a", help="git revision of the code to compare against")
    ap.add_argument("--no-before", action="store_true", help="time only this tree")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="20,000 rows, no before (a smoke run)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "data-scale.json"))
    args = ap.parse_args()
    if args.quick:
        args.rows, args.no_before = 20_000, True
    work = Path(tempfile.mkdtemp(prefix="medtune-data-scale-"))
    t0 = time.perf_counter()
    train, evals = make_files(work, args.rows, args.eval_rows)
    gen_s = time.perf_counter() - t0
    trees = {"after": ROOT}
    if not args.no_before:
        before = work / "before"
        before.mkdir()
        subprocess.run(f"git -C {ROOT} archive {args.before} | tar -x -C {before}", shell=True, check=True)
        trees = {"before": before, "after": ROOT}
    commands = {
        "stats": ["data", "stats", str(train)],
        "stats_against": ["data", "stats", str(evals), "--against", str(train)],
        "split": ["data", "split", str(train), "--eval-size", str(args.eval_rows), "--out", str(work / "split")],
    }
    results: dict = {name: {side: [] for side in trees} for name in commands}
    for name in commands:
        results[name]["after_warm"] = []
    loads = [load_avg()]
    for _ in range(args.repeats):
        for name, cmd in commands.items():
            for side, tree in trees.items():   # before, then after, in turn
                cache = work / f"cache-{side}-{name}"
                env = {**os.environ, "PYTHONPATH": str(tree), "MEDTUNE_CACHE": str(cache),
                       "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
                res = timed_rusage([sys.executable, "-m", "medtune", *cmd], env)
                res["load_avg"] = load_avg()
                results[name][side].append(res)
                print(f"{name:14s} {side:6s} {res['wall_s']:7.2f} s  cpu {res.get('cpu_s')} s  rss {res.get('peak_rss_mb')} MB "
                      f"(tree rss {res['tree_rss_peak_mb']} MB, pss {res['tree_pss_peak_mb']} MB)  rc {res['rc']}  "
                      f"load {res['load_avg']}", flush=True)
                if side == "after":
                    warm = timed_rusage([sys.executable, "-m", "medtune", *cmd], env)
                    warm["load_avg"] = load_avg()
                    results[name]["after_warm"].append(warm)
                    print(f"{name:14s} warm   {warm['wall_s']:7.2f} s  cpu {warm.get('cpu_s')} s  rss {warm.get('peak_rss_mb')} MB "
                          f"(tree rss {warm['tree_rss_peak_mb']} MB, pss {warm['tree_pss_peak_mb']} MB)", flush=True)
                shutil.rmtree(cache, ignore_errors=True)
        loads.append(load_avg())
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    out = {"what": "medtune data stats / stats --against / split on a synthetic Hub-layout MedMCQA train file",
           "rows": args.rows, "eval_rows": args.eval_rows, "file_mb": round(train.stat().st_size / 2**20, 1),
           "generate_s": round(gen_s, 1), "before": None if args.no_before else args.before, "after": commit,
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "load_avg_1_5_15": loads, "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
           "note": "wall_s is one fresh process per command; peak_rss_mb is the command's own process (GNU time), "
                   "tree_rss_peak_mb / tree_pss_peak_mb sum a forked helper too (RSS counts shared pages twice, PSS once); after_warm reruns with the items cache of the cold run",
           "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
