"""`medtune report RUN [--compare OTHER]`."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The run (or eval) folder, another to compare, the output folder."""
    p.add_argument("run", help="a training run folder, or an eval folder")
    p.add_argument("--compare", metavar="OTHER", help="another run or eval folder to set beside it")
    p.add_argument("--out", help="folder for report.html and the PNGs (default RUN/report)")


def main(args: argparse.Namespace) -> int:
    """Write the HTML report."""
    from medtune.eval.report import build_report

    path = build_report(args.run, args.compare, args.out)
    print(f"medtune: wrote {path} (and its PNGs beside it)")
    return 0
