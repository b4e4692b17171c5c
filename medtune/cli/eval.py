"""`medtune eval`: score a model on questions (flags generated from EvalConfig), or compare two evals."""

from __future__ import annotations

import argparse
import datetime as dt

from medtune.cli.common import add_data_options, load_options, report_skipped
from medtune.config import add_fields, given_fields
from medtune.errors import MedtuneError

EVAL_FIELDS = ["data", "model", "adapter", "out", "scorers", "template", "limit", "batch_size", "max_length",
               "seed", "device", "dtype", "trust_remote_code", "max_new_tokens", "thinking"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every EvalConfig field the command line sets, plus --compare and the data flags."""
    from medtune.eval.run import EvalConfig

    add_fields(p, EvalConfig, EVAL_FIELDS, scorers={"flags": ["--scorer"], "metavar": "SCORER"},
               out={"help": "results folder (default runs/eval-TIMESTAMP)"})
    p.add_argument("--compare", nargs=2, metavar=("BASE_DIR", "NEW_DIR"),
                   help="print two eval folders side by side with a paired McNemar test")
    add_data_options(p)


def main(args: argparse.Namespace) -> int:
    """Score, print the table, write metrics.json and predictions.jsonl (or compare two folders)."""
    if args.compare:
        from medtune.eval.compare import compare_runs, format_compare

        print(format_compare(compare_runs(args.compare[0], args.compare[1], out=args.out)))
        return 0
    if not args.data:
        raise MedtuneError("name the questions to score with --data (a file, folder, built-in name such "
                           "as medmcqa-dev, or hf:DATASET:SPLIT)", field="--data")
    from medtune.backend import processes
    from medtune.eval.run import EvalConfig, evaluate_items, format_table, load_items

    given = given_fields(args, EvalConfig)
    if "scorers" in given:
        given["scorers"] = [s.strip() for s in ",".join(given["scorers"]).split(",") if s.strip()]
    given.setdefault("out", f"runs/eval-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    cfg = EvalConfig(**given, load_options=load_options(args))
    items, report = load_items(cfg)
    report_skipped(report)
    metrics = evaluate_items(cfg, items, report)
    if processes()[0] != 0:  # under accelerate launch / torchrun: the first process reports and writes
        return 0
    src = ", ".join(s.path for s in report.sources)
    print(format_table(metrics, f"medtune eval: {metrics['manifest']['model']['name']} on {src}"))
    print(f"wrote {cfg.out}/metrics.json and {cfg.out}/predictions.jsonl")
    return 0
