"""Fixed-size batches against token-budget passes (medtune.eval.scoring.passes), in one process, on a
recipe's held-out questions with the letter scorer and the shared-prefix cache; the two alternate so a
drift of the machine hits both, and the predictions are compared question by question.

usage: python benchmarks/eval_passes.py OUT.json [--recipe demo-cpu] [--threads 2] [--batch-size 16]
           [--rounds 2] [--share 0/2]

`--share R/N` scores only what process R of N would score under a launcher (`torchrun --nproc_per_node N`),
e.g. `--threads 1 --batch-size 8 --share 0/2` is one of the two one-thread processes of the 2x8 setting.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def fixed(requests, order, batch_size, skip=0):
    """What medtune did before token budgets: batch_size questions a pass, whatever their lengths."""
    return [list(order[s:s + batch_size]) for s in range(0, len(order), batch_size)]


def padding(requests, batches, skip) -> float:
    """Fraction of the tokens of the passes that are padding."""
    real = padded = 0
    for b in batches:
        lens = [requests[i].longest - skip for i in b]
        real += sum(lens)
        padded += len(lens) * max(lens)
    return 1 - real / padded


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--recipe", default="demo-cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--share", default="0/1", help="R/N: the questions process R of N scores")
    ap.add_argument("--data", help="score these questions (a source, e.g. medmcqa-dev) instead of the recipe's "
                                   "held-out ones")
    ap.add_argument("--limit", type=int, help="the first N questions")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import medtune.eval.scoring as scoring
    from medtune.backend import select_backend
    from medtune.train.recipe import load_recipe
    from medtune.data.prompts import render, resolve_template
    from medtune.manifest import cpu_model, git_commit, package_versions
    from medtune.models import load_causal_lm, load_tokenizer, resolve_model
    from medtune.train.trainset import load_questions

    recipe = load_recipe(args.recipe, [])
    if args.data:
        from medtune.data import load_benchmark

        items = load_benchmark(args.data)[0]
    else:
        items = load_questions(recipe).evals
    items = items[: args.limit] if args.limit else items
    ref = resolve_model(recipe.model.name)
    tok = load_tokenizer(ref, False)
    model = load_causal_lm(ref, select_backend("cpu"), None, False).eval()
    template = resolve_template("auto", tok)
    reqs = [scoring.build_request(tok, p.prompt, p.choices) for p in (render(it, template, tok) for it in items)]
    rank, world = (int(x) for x in args.share.split("/"))
    reqs = [reqs[i] for i in scoring.share(reqs, rank, world)]
    skip = len(scoring.common_prefix(reqs))
    order = scoring._longest_first(reqs)
    budget = scoring.passes
    ways = {"fixed": fixed, "token_budget": budget}
    pads = {name: padding(reqs, f(reqs, order, args.batch_size, skip), skip) for name, f in ways.items()}
    n_passes = {name: len(f(reqs, order, args.batch_size, skip)) for name, f in ways.items()}

    scoring.score_requests(model, reqs[:16], batch_size=args.batch_size, pad_id=tok.pad_token_id)  # warm-up
    runs, preds = [], {}
    for k in range(args.rounds):
        for name, f in ways.items():
            scoring.passes = f
            t0 = time.perf_counter()
            got = scoring.score_requests(model, reqs, batch_size=args.batch_size, pad_id=tok.pad_token_id)
            wall = time.perf_counter() - t0
            preds.setdefault(name, [max(range(len(s.logliks)), key=s.logliks.__getitem__) for s in got])
            runs.append({"round": k, "batching": name, "seconds": wall, "questions_per_s": len(reqs) / wall})
            print(f"{name:>12}: {len(reqs) / wall:6.2f} q/s ({wall:.1f} s)", flush=True)
    scoring.passes = budget
    summary = {name: {"questions_per_s_median": statistics.median(r["questions_per_s"] for r in runs
                                                                  if r["batching"] == name),
                      "padding_fraction": pads[name], "passes": n_passes[name]} for name in ways}
    summary["speedup"] = (summary["token_budget"]["questions_per_s_median"]
                          / summary["fixed"]["questions_per_s_median"])
    summary["identical_predictions"] = sum(a == b for a, b in zip(preds["fixed"], preds["token_budget"]))
    print(f"padding {pads['fixed']:.1%} -> {pads['token_budget']:.1%}; {summary['speedup']:.2f}x; predictions "
          f"identical {summary['identical_predictions']}/{len(reqs)}")
    doc = {"what": "eval passes: fixed batch size vs a token budget (batch size x the median question)",
           "command": "python benchmarks/eval_passes.py " + " ".join(sys.argv[1:]),
           "commit": git_commit(), "versions": package_versions(),
           "device": {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": args.threads},
           "recipe": args.recipe, "data": args.data or "the recipe's held-out questions", "share": args.share, "questions": len(reqs), "batch_size": args.batch_size,
           "shared_prefix_tokens": skip, "summary": summary, "runs": runs}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
