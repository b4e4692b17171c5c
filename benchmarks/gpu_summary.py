"""One group of benchmarks/gpu.sh in one file: how each step ended and the figures that matter, pulled from
the group's JSON files, with the device, versions and commit. Reads the step lines (group|name|status|
seconds|note) on stdin; writes OUT/gpuN-summary.json and prints the figures.

usage (from gpu.sh): ... | python benchmarks/gpu_summary.py OUT GROUP SMOKE SECONDS
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _train(doc: dict) -> list[dict]:
    out = []
    for r in doc.get("results", []):
        mem = r.get("memory", {})
        out.append({"recipe": r.get("recipe"), "method": r.get("method"), "precision": r.get("precision"),
                    "tokens_per_s": r.get("tokens_per_s"), "samples_per_s": r.get("samples_per_s"),
                    "step_s_median": r.get("step_s_median"), "mfu": r.get("mfu"),
                    "peak_rate_tflops": (r.get("matmul_rate_flops") or 0) / 1e12,
                    "peak_memory_gb": mem.get("device_peak_allocated_gb", mem.get("host_peak_rss_gb"))})
    return out


def _eval(doc: dict) -> list[dict]:
    out = []
    for r in doc.get("results", []):
        row = {"questions": r.get("questions"), "batch_size": r.get("batch_size"),
               "question_tokens": r.get("question_tokens"), "identical_predictions": r.get("identical_predictions"),
               "flips_beyond_tolerance": r.get("flips_beyond_tolerance")}
        for label in ("prefix_cache", "no_prefix_cache"):
            if label in r:
                row[label] = {k: r[label].get(k) for k in ("seconds", "questions_per_s", "tokens_per_s",
                                                            "processed_tokens")}
        out.append(row)
    return out


def figures(out: Path, group: str) -> dict:
    """The headline figures of each JSON file the group wrote."""
    got: dict = {}
    for f in sorted(out.glob(f"gpu{group}-*.json")):
        doc = _load(f)
        if doc is None or f.name.endswith("-summary.json") or f.name.endswith("-doctor.json"):
            continue
        key = f.stem.split("-", 1)[1]
        if "train" in key:
            got[key] = {"runs": _train(doc), "ratio": doc.get("ratio")}
        elif "eval" in key and "lm-eval" not in key:
            got[key] = _eval(doc)
        elif "plan" in key:
            got[key] = [{k: row.get(k) for k in ("batch", "seq_len", "estimated_gib", "measured_gib", "error")}
                        for row in doc.get("rows", [])]
        elif "parity" in key:
            r = doc["results"][0]
            got[key] = {"what": r["what"], "questions": r["questions"],
                        "median_top2_margin": r["median_top2_margin"],
                        **{d: {k: c[k] for k in ("identical", "agreement_with_tolerance", "flips_beyond_tolerance",
                                                 "max_abs_loglik_difference", "met")}
                           for d, c in r["comparisons"].items()}}
        else:
            got[key] = doc
    return got


def main() -> int:
    out, group, smoke, seconds = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
    steps = []
    for line in sys.stdin.read().splitlines():
        if line.strip():
            g, name, status, secs, note = (line.split("|", 4) + [""] * 5)[:5]
            steps.append({"name": name, "status": status, "seconds": int(secs or 0), "note": note})
    from medtune.manifest import cpu_model, git_commit, package_versions

    import os

    recorded = out / "gpu1-doctor.json"  # what group 1 of this same call recorded, else ask torch
    fresh = recorded.is_file() and recorded.stat().st_mtime >= float(os.environ.get("MEDTUNE_GPU_T0", "inf"))
    doctor = _load(recorded) if fresh else None
    if doctor is None:
        from medtune.backend import detect

        doctor = detect()
    gpus = doctor.get("devices") or []
    device = gpus[0]["name"] if gpus else f"CPU: {cpu_model()}"
    doc = {"what": f"benchmarks/gpu.sh group {group}" + (" --smoke (CPU, tiny random Qwen3)" if smoke else ""),
           "device": device, "commit": git_commit(), "versions": package_versions(),
           "torch_build": {"torch": doctor.get("torch"), "cuda": doctor.get("cuda_version"),
                           "hip": doctor.get("hip_version")},
           "seconds": seconds, "steps": steps, "figures": figures(out, group)}
    (out / f"gpu{group}-summary.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"group {group} on {device}: {seconds} s")
    for s in steps:
        print(f"  {s['name']:<22}{s['status']:<9}{s['seconds']:>5} s  {s['note']}")
    for key, fig in doc["figures"].items():
        print(f"  {key}: {json.dumps(fig)[:400]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
