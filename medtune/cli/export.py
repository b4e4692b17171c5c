"""`medtune export RUN --merge --out DIR`."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The run folder and where the merged model goes."""
    p.add_argument("run", help="a run folder written by medtune train")
    p.add_argument("--merge", action="store_true", help="merge the adapter into the weights in fp32 (what export "
                                                         "does; the flag may be left out)")
    p.add_argument("--out", required=True, help="folder for the merged safetensors model")


def main(args: argparse.Namespace) -> int:
    """Merge and write."""
    from medtune.export import export_run

    print(f"wrote {export_run(args.run, out=args.out)}")
    return 0
