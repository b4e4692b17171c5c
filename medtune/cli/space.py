"""`medtune space RUN --out DIR`."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The run and the Space folder to write."""
    p.add_argument("run", help="a run folder from medtune train/demo")
    p.add_argument("--out", required=True, help="the Space folder to write")
    p.add_argument("--base-model", help="the base model's Hub id, when the run used a local folder")
    p.add_argument("--title", help="the Space title")


def main(args: argparse.Namespace) -> int:
    """Write the Space folder."""
    from medtune.space import build_space

    out = build_space(args.run, args.out, base_model=args.base_model, title=args.title)
    print(f"medtune: wrote a Gradio Space to {out}: upload it with "
          f"`huggingface-cli upload --repo-type space OWNER/NAME {out}` or run `python {out}/app.py`")
    return 0
