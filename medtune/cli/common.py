"""Argument groups several verbs share: how to read data, which model answers."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from medtune.config import add_fields, setting
from medtune.errors import MedtuneError


def add_data_options(p: argparse.ArgumentParser) -> None:
    """--format, --cop-base, --on-bad-row, --map, --split: how a source is read."""
    from medtune.train.recipe import DataArgs

    g = p.add_argument_group("reading the data")
    add_fields(g, DataArgs, ["format", "cop_base", "on_bad_row"], cop_base={"choices": (0, 1)},
               on_bad_row={"choices": ("error", "skip")})
    g.add_argument("--no-data-cache", action="store_true",
                   help="read and check the sources again instead of reusing records cached from an earlier read")
    g.add_argument("--map", nargs="+", metavar="KEY=COLUMN",
                   help="generic format column mapping, e.g. question=stem options=A,B,C,D answer=label")
    g.add_argument("--split", dest="data_split",
                   help="keep only records of this official split (PubMedQA: test or train_dev)")


def load_options(args: argparse.Namespace) -> Any:
    """The LoadOptions the data flags describe."""
    from medtune.data.sources import LoadOptions
    from medtune.train.recipe import DataArgs

    columns = None
    if args.map:
        columns = {}
        for pair in args.map:
            key, sep, col = pair.partition("=")
            if not sep or not key or not col:
                raise MedtuneError(f"expected KEY=COLUMN, got {pair!r}", field="--map")
            columns[key.strip()] = col.strip()
    return LoadOptions(format=args.format, cop_base=args.cop_base, on_bad_row=setting(args, DataArgs, "on_bad_row"),
                       columns=columns, split=args.data_split, cache=False if args.no_data_cache else None)


def report_skipped(report: Any) -> None:
    """One stderr line when bad rows were skipped."""
    if report.skipped:
        print(f"medtune: skipped {len(report.skipped)} bad rows (--on-bad-row skip); first: "
              f"{report.skipped[0]}", file=sys.stderr)


def add_answer_options(p: argparse.ArgumentParser) -> None:
    """Which model answers (ask, serve): a run folder, or a model and adapter."""
    from medtune.eval.scorers import user_scorers

    p.add_argument("--run", help="a run folder from medtune train/demo (its base model and adapter)")
    p.add_argument("--model", help="embedded name (smollm2-135m-instruct, the default), folder or Hub id")
    p.add_argument("--adapter", help="a PEFT adapter folder or Hub id")
    p.add_argument("--template", help="auto, chat, plain, hackathon, lm-eval or a template .yaml file (default: "
                                      "the run's, else auto)")
    p.add_argument("--scorer", choices=user_scorers(),
                   help="default: the run's eval scorer, else letter; generate: the model writes its answer "
                        "(greedy) and the letter is read from the reply")
    p.add_argument("--abstain-below", type=float, metavar="P",
                   help="withhold answers whose calibrated confidence is below P (default: the run's threshold, "
                        "fitted on its selection split; none without a run)")
    from medtune.eval.run import EvalConfig

    add_fields(p, EvalConfig, ["device", "device_map", "max_memory", "dtype", "trust_remote_code", "max_new_tokens",
                               "thinking"])


def answerer(args: argparse.Namespace) -> Any:
    """The Answerer the answer options describe."""
    from medtune.eval.run import EvalConfig
    from medtune.serve.answer import Answerer, Source, source_from_run

    if args.run:
        if args.model or args.adapter:
            raise MedtuneError("give either --run or --model/--adapter, not both", field="--run")
        source = source_from_run(args.run, args.template, args.scorer, thinking=args.thinking)
    else:
        given = {k: getattr(args, k) for k in ("template", "scorer", "thinking") if getattr(args, k) is not None}
        source = Source(model=args.model, adapter=args.adapter, **given)  # Source's defaults otherwise
    if args.abstain_below is not None:
        source.abstain_below = args.abstain_below
    from medtune.models.devicemap import placement

    return Answerer(source, device=args.device, dtype=setting(args, EvalConfig, "dtype"),
                    trust_remote_code=setting(args, EvalConfig, "trust_remote_code"),
                    place=placement(args.device_map, args.max_memory))
