"""`medtune demo`: the main job on the embedded model and the MedMCQA data shipped with medtune.

Today it is a baseline evaluation: cut the stable hash split of the shipped MedMCQA dev file
(500 questions held out), score the held-out questions with the embedded SmolLM2-135M-Instruct,
and print accuracy with confidence intervals beside the trivial baselines.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

DEMO_EVAL_SIZE = 500
DEMO_SEED = 0


def run_demo(args: argparse.Namespace) -> int:
    """Split the shipped data, evaluate the embedded model, print an honest summary."""
    from medtune.data.sources import load_benchmark
    from medtune.data.split import split_and_write
    from medtune.eval.run import EvalConfig, evaluate_items, format_table

    t0 = time.perf_counter()
    out = Path(args.out)
    items, report = load_benchmark("medmcqa-dev")
    print(f"medtune demo: {len(items)} MedMCQA dev questions shipped with medtune (MIT licence). "
          f"No MedMCQA train split is shipped, so a stable hash split (seed {DEMO_SEED}) holds "
          f"{DEMO_EVAL_SIZE} of them out for evaluation.")
    print(split_and_write(items, report, out=str(out / "data"), eval_size=DEMO_EVAL_SIZE,
                          eval_fraction=None, seed=DEMO_SEED, threshold=0.8).split("\n\n")[0])
    eval_items, eval_report = load_benchmark(str(out / "data" / "eval.jsonl"))
    if args.limit:
        eval_items = eval_items[: args.limit]
    scorers = [s.strip() for s in ",".join(args.scorer).split(",") if s.strip()]
    cfg = EvalConfig(data=[str(out / "data" / "eval.jsonl")], out=str(out / "baseline"), scorers=scorers,
                     limit=args.limit, batch_size=args.batch_size)
    metrics = evaluate_items(cfg, eval_items, eval_report)
    print()
    print(format_table(metrics, f"baseline: {metrics['manifest']['model']['name']} on "
                                f"{len(eval_items)} held-out MedMCQA questions"))
    mf = metrics["baselines"]["most_frequent_letter"]
    print(f"\nA model counts as knowing something only where it beats always answering "
          f"{mf['letter']!r} ({mf['accuracy']:.1%} here), not only chance.")
    print("A 135M-parameter model on a CPU is a pipeline check, not a clinical result.")
    print(f"results: {out / 'baseline'}/metrics.json, predictions.jsonl · total {time.perf_counter() - t0:.0f} s")
    return 0
