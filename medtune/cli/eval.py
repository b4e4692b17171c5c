"""`medtune eval`: score a model on questions (flags generated from EvalConfig), run a suite of tasks
(--suite), or compare two evals."""

from __future__ import annotations

import argparse
import datetime as dt

from medtune.cli.common import add_data_options, load_options, report_skipped
from medtune.config import add_fields, given_fields
from medtune.errors import MedtuneError

EVAL_FIELDS = ["data", "model", "adapter", "out", "scorers", "template", "limit", "batch_size", "max_length",
               "seed", "device", "device_map", "max_memory", "dtype", "trust_remote_code", "max_new_tokens", "thinking",
               "progress", "permute", "debias", "debias_fraction", "calibrate_on", "target_accuracy"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every EvalConfig field the command line sets, plus --compare and the data flags."""
    from medtune.eval.run import EvalConfig

    add_fields(p, EvalConfig, EVAL_FIELDS, scorers={"flags": ["--scorer"], "metavar": "SCORER"},
               out={"help": "results folder (default runs/eval-TIMESTAMP)"}, permute={"metavar": "cyclic|N"},
               debias={"choices": ("pride",)}, calibrate_on={"metavar": "FILE"})
    p.add_argument("--compare", nargs=2, metavar=("BASE_DIR", "NEW_DIR"),
                   help="print two eval folders side by side with a paired McNemar test")
    p.add_argument("--suite", metavar="NAME|FILE",
                   help="score every task of a suite (built-in: open-medical-llm, the Open Medical-LLM "
                        "Leaderboard's nine lm-eval tasks; or a suite .yaml file): one table, the unweighted "
                        "average, and lm-eval's results.json in --out")
    p.add_argument("--data-dir", metavar="DIR",
                   help="with --suite: a folder holding local copies of the tasks' data (medmcqa/, medqa/, "
                        "pubmedqa/, mmlu_medical/, as in ../shared/data); tasks not found there use the Hub")
    add_data_options(p)


def main(args: argparse.Namespace) -> int:
    """Score, print the table, write metrics.json and predictions.jsonl (or compare two folders)."""
    if args.compare:
        from medtune.eval.compare import compare_runs, format_compare

        print(format_compare(compare_runs(args.compare[0], args.compare[1], out=args.out)))
        return 0
    if args.suite:
        return _suite(args)
    if args.data_dir:
        raise MedtuneError("--data-dir goes with --suite (for one benchmark, name it with --data)",
                           field="--data-dir")
    if not args.data:
        raise MedtuneError("name the questions to score with --data (a file, folder, built-in name such "
                           "as medmcqa-dev, or hf:DATASET:SPLIT)", field="--data")
    from medtune.backend import processes
    from medtune.eval.run import EvalConfig, evaluate_items, format_table, load_items

    given = _config_fields(args)
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


def _suite(args: argparse.Namespace) -> int:
    """`--suite`: every task of the suite with one loaded model, the table and the files."""
    from medtune.backend import processes
    from medtune.eval.run import EvalConfig
    from medtune.eval.suite import format_suite, run_suite

    if args.data:
        raise MedtuneError("--suite names its own data (per task in the suite file, or --data-dir); drop --data",
                           field="--data")
    given = _config_fields(args)
    given.setdefault("out", f"runs/suite-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    cfg = EvalConfig(**given, load_options=load_options(args))
    summary = run_suite(args.suite, cfg, data_dir=args.data_dir)
    if processes()[0] != 0:
        return 0
    print(format_suite(summary))
    print(f"wrote {cfg.out}/suite.json, {cfg.out}/results.json (lm-eval's shape) and one eval folder per task")
    return 0


def _config_fields(args: argparse.Namespace) -> dict:
    from medtune.eval.run import EvalConfig

    given = given_fields(args, EvalConfig)
    if "scorers" in given:
        given["scorers"] = [s.strip() for s in ",".join(given["scorers"]).split(",") if s.strip()]
    return given
