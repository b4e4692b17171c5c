"""`medtune bench train|eval RECIPE [key=value ...]` and `medtune bench parity`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """What to time, on which model, and where the JSON goes."""
    from medtune.eval.scorers import training_scorers

    p.add_argument("kind", choices=["train", "eval", "parity"],
                   help="train: a training step; eval: the eval scorer; parity: a seeded random model's letters "
                        "on the CPU and the GPU, fp32 and bf16 (no recipe)")
    p.add_argument("recipe", nargs="?", help="a YAML recipe or shipped recipe name; omitted: the defaults")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted recipe overrides")
    p.add_argument("--shape", help="build this architecture with random weights instead: a shipped shape "
                                   "(qwen3-1.7b) or a folder with config.json (parity: default qwen3-1.7b)")
    p.add_argument("--tokenizer", help="a shipped tokenizer (qwen2.5, qwen3), any folder with tokenizer files, or "
                                       "a Hub id (default: the recipe's model; parity: qwen2.5)")
    p.add_argument("--vs", metavar="RECIPE", help="also run this recipe, each in its own process (its env and "
                                                  "peak memory its own), and print the ratio")
    p.add_argument("--steps", type=int, default=20, help="train: timed optimizer steps")
    p.add_argument("--warmup", type=int, default=5, help="train: untimed steps first")
    p.add_argument("--compile", action="store_true", help="train: torch.compile the model")
    p.add_argument("--limit", type=int, help="eval, parity: only the first N questions (parity: default 200)")
    p.add_argument("--layers", type=int, help="parity: keep this many of the shape's layers (default 4; 0: all); "
                                              "the CPU side is the slow one")
    p.add_argument("--seed", type=int, help="parity: the random weights' seed (default 0)")
    p.add_argument("--data", nargs="+", help="eval: these sources instead of the recipe's (parity: one source, "
                                             "default medmcqa-dev)")
    p.add_argument("--batch-size", type=int, help="eval, parity: questions per forward pass (of median length; "
                                                  "parity: default 16)")
    p.add_argument("--scorer", choices=training_scorers(), help="eval: default the recipe's eval scorer")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], help="eval: cast the model (default: the backend's; "
                   "bfloat16 on a CPU pays off only with AVX-512 BF16 or AMX)")
    p.add_argument("--no-compare", action="store_true", help="eval: skip the run without the prefix cache")
    p.add_argument("--reference", metavar="EVAL", help="eval: count predictions equal to this recorded eval's "
                   "(a folder with predictions.jsonl, matched by question id)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--out", help="JSON file (default benchmarks/results/bench-KIND-RECIPE[-SHAPE].json)")


def main(args: argparse.Namespace) -> int:
    """Run the bench and write its JSON."""
    if args.kind == "parity":
        return _parity(args)
    from medtune.bench import run_bench

    common = {"shape": args.shape, "tokenizer": args.tokenizer, "device": args.device}
    if args.kind == "train":
        extra = {"steps": args.steps, "warmup": args.warmup, "compile": args.compile}
    else:
        extra = {"limit": args.limit, "batch_size": args.batch_size, "scorer": args.scorer,
                 "compare_without_prefix": not args.no_compare, "data": args.data, "reference": args.reference,
                 "dtype": args.dtype}
    stem = Path(args.recipe).stem if args.recipe else "default"
    out = args.out or f"benchmarks/results/bench-{args.kind}-{stem}{'-' + args.shape if args.shape else ''}.json"
    run_bench(args.kind, args.recipe, args.overrides, out=out, vs=args.vs, **common, **extra)
    return 0


def _parity(args: argparse.Namespace) -> int:
    """`medtune bench parity`: exit 1 when a target is missed."""
    from medtune.bench import parity
    from medtune.errors import MedtuneError

    if args.recipe or args.overrides or args.vs:
        raise MedtuneError("parity takes no recipe: it scores a seeded random model (--shape, --layers)",
                           field="bench parity")
    ns = argparse.Namespace(shape=args.shape, layers=args.layers, tokenizer=args.tokenizer,
                            data=args.data[0] if args.data else None, limit=args.limit, batch_size=args.batch_size,
                            device=args.device, seed=args.seed, out=args.out or "benchmarks/results/bench-parity.json")
    return parity.main(ns)
