"""CPU evaluation settings for the embedded SmolLM2, measured one after another in one process:
batch size with and without the shared-prefix cache, flush-denormal, and (optionally) torch.compile.
Letter scorer, chat template, the first N MedMCQA dev questions; each setting gets a warm-up batch.

usage: python benchmarks/cpu_eval_sweep.py OUT.json [--questions 256] [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize_eval import cpu_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--questions", type=int, default=256)
    ap.add_argument("--compile", action="store_true", help="also torch.compile (minutes of compiling)")
    args = ap.parse_args()

    import torch

    from medtune.backend import select_backend
    from medtune.data.prompts import render
    from medtune.data.sources import load_benchmark
    from medtune.eval.scoring import build_request, score_requests
    from medtune.manifest import git_commit, package_versions
    from medtune.models import load_causal_lm, load_tokenizer, resolve_model

    backend = select_backend("cpu")
    ref = resolve_model(None)
    tok = load_tokenizer(ref)
    model = load_causal_lm(ref, backend)
    items, _ = load_benchmark(["medmcqa-dev"])
    reqs = [build_request(tok, render(it, "chat", tok).prompt, "ABCD"[:len(it.options)])
            for it in items[: args.questions]]
    rows, reference = [], None

    def run(label: str, bs: int, reuse: bool = True, m=model) -> None:
        nonlocal reference
        t0 = time.perf_counter()
        score_requests(m, reqs[:bs], batch_size=bs, pad_id=tok.pad_token_id, reuse_prefix=reuse)
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores = score_requests(m, reqs, batch_size=bs, pad_id=tok.pad_token_id, reuse_prefix=reuse)
        wall = time.perf_counter() - t0
        preds = [max(range(len(s.logliks)), key=s.logliks.__getitem__) for s in scores]
        reference = reference or preds
        rows.append({"setting": label, "batch_size": bs, "prefix_cache": reuse, "warmup_s": warm,
                     "seconds": wall, "questions_per_s": len(reqs) / wall,
                     "same_predictions_as_first": sum(a == b for a, b in zip(preds, reference))})
        print(f"{label:<28} bs {bs:>3}  {len(reqs) / wall:6.2f} q/s", flush=True)

    run("no prefix cache (before)", 8, reuse=False)
    for bs in (4, 8, 16, 32):
        run("prefix cache", bs)
    torch.set_flush_denormal(True)
    run("prefix cache, flush denormal", 16)
    torch.set_flush_denormal(False)
    if args.compile:
        run("prefix cache, torch.compile", 16, m=torch.compile(model, dynamic=True))
    out = {"what": "CPU evaluation settings, embedded SmolLM2, letter scorer, chat template",
           "command": "python benchmarks/cpu_eval_sweep.py " + " ".join(sys.argv[1:]),
           "commit": git_commit(), "versions": package_versions(),
           "device": {"backend": backend.to_dict(), "cpu": cpu_model(), "cores": os.cpu_count()},
           "questions": len(reqs), "rows": rows}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
