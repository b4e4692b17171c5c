"""`medtune demo [key=value ...]`: configs/demo-cpu.yaml end to end."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Recipe overrides only."""
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides, e.g. train.max_steps=10")


def main(args: argparse.Namespace) -> int:
    """Run the demo."""
    from medtune.demo import run_demo

    return run_demo(args)
