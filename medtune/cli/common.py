"""Argument groups several verbs share: how to read data, which model answers."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from medtune.errors import MedtuneError


def add_data_options(p: argparse.ArgumentParser) -> None:
    """--format, --cop-base, --on-bad-row, --map, --split: how a source is read."""
    g = p.add_argument_group("reading the data")
    g.add_argument("--format", help="medmcqa, medqa, pubmedqa, mmlu, medtune, swag or generic "
                                    "(default: detected from the fields)")
    g.add_argument("--cop-base", type=int, choices=(0, 1),
                   help="answer indices count from 0 (MedMCQA on the Hub) or 1 (the original release); "
                        "needed only when the data cannot tell")
    g.add_argument("--on-bad-row", choices=("error", "skip"), default="error",
                   help="stop at the first bad row (default) or skip bad rows and count them")
    g.add_argument("--map", nargs="+", metavar="KEY=COLUMN",
                   help="generic format column mapping, e.g. question=stem options=A,B,C,D answer=label")
    g.add_argument("--split", dest="data_split",
                   help="keep only records of this official split (PubMedQA: test or train_dev)")


def load_options(args: argparse.Namespace) -> Any:
    """The LoadOptions the data flags describe."""
    from medtune.data.sources import LoadOptions

    columns = None
    if args.map:
        columns = {}
        for pair in args.map:
            key, sep, col = pair.partition("=")
            if not sep or not key or not col:
                raise MedtuneError(f"expected KEY=COLUMN, got {pair!r}", field="--map")
            columns[key.strip()] = col.strip()
    return LoadOptions(format=args.format, cop_base=args.cop_base, on_bad_row=args.on_bad_row,
                       columns=columns, split=args.data_split)


def report_skipped(report: Any) -> None:
    """One stderr line when bad rows were skipped."""
    if report.skipped:
        print(f"medtune: skipped {len(report.skipped)} bad rows (--on-bad-row skip); first: "
              f"{report.skipped[0]}", file=sys.stderr)


def add_answer_options(p: argparse.ArgumentParser) -> None:
    """Which model answers (ask, serve): a run folder, or a model and adapter."""
    p.add_argument("--run", help="a run folder from medtune train/demo (its base model and adapter)")
    p.add_argument("--model", help="embedded name (smollm2-135m-instruct, the default), folder or Hub id")
    p.add_argument("--adapter", help="a PEFT adapter folder or Hub id")
    p.add_argument("--template", help="auto, chat, plain or hackathon (default: the run's, else auto)")
    p.add_argument("--scorer", choices=["letter", "cloze"], help="default: the run's eval scorer, else letter")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a model's own Python code")


def answerer(args: argparse.Namespace) -> Any:
    """The Answerer the answer options describe."""
    from medtune.serve.answer import Answerer, Source, source_from_run

    if args.run:
        if args.model or args.adapter:
            raise MedtuneError("give either --run or --model/--adapter, not both", field="--run")
        source = source_from_run(args.run, args.template, args.scorer)
    else:
        source = Source(model=args.model, adapter=args.adapter, template=args.template or "auto",
                        scorer=args.scorer or "letter")
    return Answerer(source, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
