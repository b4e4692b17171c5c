"""`medtune bench train|eval RECIPE [key=value ...]`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """What to time, on which model, and where the JSON goes."""
    p.add_argument("kind", choices=["train", "eval"])
    p.add_argument("recipe", nargs="?", help="a YAML recipe or shipped recipe name; omitted: the defaults")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted recipe overrides")
    p.add_argument("--shape", help="build this architecture with random weights instead (e.g. qwen3-1.7b)")
    p.add_argument("--tokenizer", help="tokenizer folder or Hub id (default: the recipe's model)")
    p.add_argument("--vs", metavar="RECIPE", help="also run this recipe in the same process and print the ratio")
    p.add_argument("--steps", type=int, default=20, help="train: timed optimizer steps")
    p.add_argument("--warmup", type=int, default=5, help="train: untimed steps first")
    p.add_argument("--compile", action="store_true", help="train: torch.compile the model")
    p.add_argument("--limit", type=int, help="eval: only the first N questions")
    p.add_argument("--data", nargs="+", help="eval: these sources instead of the recipe's")
    p.add_argument("--batch-size", type=int, help="eval: questions per forward pass (of median length)")
    p.add_argument("--scorer", choices=["letter", "cloze"], help="eval: default the recipe's eval scorer")
    p.add_argument("--no-compare", action="store_true", help="eval: skip the run without the prefix cache")
    p.add_argument("--reference", metavar="EVAL", help="eval: count predictions equal to this recorded eval's "
                   "(a folder with predictions.jsonl, matched by question id)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--out", help="JSON file (default benchmarks/results/bench-KIND-RECIPE[-SHAPE].json)")


def main(args: argparse.Namespace) -> int:
    """Run the bench and write its JSON."""
    from medtune.bench import run_bench

    common = {"shape": args.shape, "tokenizer": args.tokenizer, "device": args.device}
    if args.kind == "train":
        extra = {"steps": args.steps, "warmup": args.warmup, "compile": args.compile}
    else:
        extra = {"limit": args.limit, "batch_size": args.batch_size, "scorer": args.scorer,
                 "compare_without_prefix": not args.no_compare, "data": args.data, "reference": args.reference}
    stem = Path(args.recipe).stem if args.recipe else "default"
    out = args.out or f"benchmarks/results/bench-{args.kind}-{stem}{'-' + args.shape if args.shape else ''}.json"
    run_bench(args.kind, args.recipe, args.overrides, out=out, vs=args.vs, **common, **extra)
    return 0
