"""`medtune data stats|validate|split`."""

from __future__ import annotations

import argparse
import json

from medtune.cli.common import add_data_options, load_options, report_skipped
from medtune.config import add_fields, setting


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The data actions and their flags."""
    from medtune.train.recipe import DataArgs

    actions = p.add_subparsers(dest="data_verb", metavar="ACTION", required=True)
    s = actions.add_parser("stats", help="counts per split, subject and answer letter; duplicates")
    s.add_argument("sources", nargs="+", help="files, folders, built-in names (medmcqa-dev) or hf:ID:SPLIT")
    s.add_argument("--against", nargs="+", help="also count questions duplicated in these (e.g. a train set)")
    s.add_argument("--json", action="store_true", help="print JSON")
    v = actions.add_parser("validate", help="check every row; exit 0 when clean, 2 on a bad row")
    v.add_argument("sources", nargs="+")
    sp = actions.add_parser("split", help="a stable hash train/eval split, near-duplicates kept on one side")
    sp.add_argument("sources", nargs="+")
    size = sp.add_mutually_exclusive_group(required=True)
    size.add_argument("--eval-size", type=int, help="number of questions held out for evaluation")
    size.add_argument("--eval-fraction", type=float, help="fraction held out (stable as data grows)")
    add_fields(sp, DataArgs, ["split_seed"], split_seed={"flags": ["--seed"]})
    sp.add_argument("--out", required=True, help="folder for train.jsonl, eval.jsonl and split.json")
    for q in (s, sp):
        q.add_argument("--near-threshold", type=float,
                       help="word-trigram Jaccard similarity from which two questions are near-duplicates "
                            "(default: medtune.data.neardup.NEAR_THRESHOLD, 0.7)")
    for q in (s, v, sp):
        add_data_options(q)


def threshold(args: argparse.Namespace) -> dict:
    """--near-threshold when given (the data layer's default otherwise)."""
    return {} if args.near_threshold is None else {"threshold": args.near_threshold}


def main(args: argparse.Namespace) -> int:
    """Run one data action."""
    from medtune.data.sources import load_benchmark
    from medtune.train.recipe import DataArgs

    items, report = load_benchmark(args.sources, load_options(args))
    if args.data_verb == "stats":
        from medtune.data.stats import dataset_stats, format_stats

        against = load_benchmark(args.against, load_options(args))[0] if args.against else None
        stats = dataset_stats(items, report, against=against, **threshold(args))
        print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    elif args.data_verb == "validate":
        for s in report.sources:
            print(f"ok: {s.path}: {s.records} records ({s.format}"
                  f"{f', {s.skipped} bad rows skipped' if s.skipped else ''})")
    else:
        from medtune.data.split import split_and_write

        print(split_and_write(items, report, out=args.out, eval_size=args.eval_size,
                              eval_fraction=args.eval_fraction, seed=setting(args, DataArgs, "split_seed"),
                              **threshold(args)))
    report_skipped(report)
    return 0
