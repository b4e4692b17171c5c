"""Scoring with a LoRA adapter attached (base + two small matmuls per layer) against the same adapter
folded into the weights (PEFT's merge_adapter, what medtune's eval, ask and serve do since this
change), in one process, on a run's own eval questions; the predictions are compared question by question.

usage: python benchmarks/adapter_merge.py RUN OUT.json [--batch-size 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("out")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--data", help="score these questions (a source, e.g. medmcqa-dev) instead of the run's eval "
                                   "questions (then nothing is compared with the run's recorded predictions)")
    ap.add_argument("--limit", type=int, help="the first N questions")
    args = ap.parse_args()

    import torch

    from medtune.backend import select_backend
    from medtune.train.recipe import load_recipe
    from medtune.data.prompts import render
    from medtune.eval.scoring import build_request, score_requests
    from medtune.manifest import cpu_model, git_commit, package_versions
    from medtune.models import attach_adapter, load_causal_lm, load_tokenizer, resolve_model
    from medtune.train.trainset import load_questions

    run = Path(args.run)
    recipe = load_recipe(str(run / "recipe.yaml"))
    backend = select_backend("cpu")
    ref = resolve_model(recipe.model.name)
    tok = load_tokenizer(ref)
    model = attach_adapter(load_causal_lm(ref, backend), str(run / "adapter"))
    model.eval()
    template = json.loads((run / "final" / "metrics.json").read_text())["manifest"]["template"]
    if args.data:
        from medtune.data import load_benchmark

        items = load_benchmark(args.data)[0]
    else:
        items = load_questions(recipe).evals
    items = items[: args.limit] if args.limit else items
    reqs = [build_request(tok, render(it, template, tok).prompt, "ABCD"[:len(it.options)]) for it in items]

    def timed() -> tuple[float, list[list[float]]]:
        t0 = time.perf_counter()
        with torch.inference_mode():
            s = score_requests(model, reqs, batch_size=args.batch_size, pad_id=tok.pad_token_id)
        return time.perf_counter() - t0, [x.logliks for x in s]

    score_requests(model, reqs[: args.batch_size], batch_size=args.batch_size, pad_id=tok.pad_token_id)
    times: dict[str, list[float]] = {"attached": [], "merged": []}
    logliks = {}
    for _ in range(args.rounds):  # alternate, so a drift in the machine's speed hits both
        for label in ("attached", "merged"):
            (model.merge_adapter if label == "merged" else model.unmerge_adapter)()
            seconds, logliks[label] = timed()
            times[label].append(seconds)
            print(f"{label:<9} {len(reqs) / seconds:6.2f} q/s", flush=True)
    pred = {k: [max(range(len(v)), key=v.__getitem__) for v in ls] for k, ls in logliks.items()}
    recorded = [] if args.data else [json.loads(x)["predicted"]
                                     for x in (run / "final" / "predictions.jsonl").read_text().splitlines()]
    out = {"what": "LoRA adapter attached vs merged into the weights, letter scorer, the run's eval questions",
           "command": "python benchmarks/adapter_merge.py " + " ".join(sys.argv[1:]),
           "commit": git_commit(), "versions": package_versions(),
           "device": {"backend": backend.to_dict(), "cpu": cpu_model(), "cores": os.cpu_count()},
           "run": str(run), "data": args.data or "the run's eval questions", "questions": len(reqs), "batch_size": args.batch_size,
           **{f"{k}_questions_per_s_median": len(reqs) / statistics.median(v) for k, v in times.items()},
           "seconds": times,
           "speedup": statistics.median(times["attached"]) / statistics.median(times["merged"]),
           "identical_predictions": sum(a == b for a, b in zip(pred["attached"], pred["merged"])),
           "identical_to_recorded_final": None if args.data else sum("ABCD"[p] == r for p, r in zip(pred["merged"], recorded)),
           "max_abs_loglik_difference": max(abs(a - b) for x, y in zip(logliks["attached"], logliks["merged"])
                                            for a, b in zip(x, y))}
    print(f"speed-up {out['speedup']:.2f}x · identical predictions {out['identical_predictions']}/{len(reqs)} · "
          + ("" if args.data else f"identical to {run}/final {out['identical_to_recorded_final']}/{len(recorded)} · ")
          + f"max |Δ log-lik| {out['max_abs_loglik_difference']:.1e}")
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
