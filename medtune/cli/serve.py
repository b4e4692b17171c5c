"""`medtune serve --ui | --api`."""

from __future__ import annotations

import argparse
import sys

from medtune.cli.common import add_answer_options, answerer
from medtune.errors import MedtuneError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """App or API, address, API limits, and which model answers."""
    p.add_argument("--ui", action="store_true", help="the Gradio app")
    p.add_argument("--api", action="store_true", help="the HTTP API (FastAPI; OpenAPI at /docs)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max-batch", type=int, default=32, help="API: questions per shared forward pass")
    p.add_argument("--timeout", type=float, default=30.0, help="API: seconds before a request gets 504")
    add_answer_options(p)


def main(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    if args.ui == args.api:
        raise MedtuneError("choose one: --ui (the Gradio app) or --api (the HTTP API)", field="--ui/--api")
    who = answerer(args)
    print(f"medtune: serving {who.ref.name}"
          f"{' + ' + who.source.adapter if who.source.adapter else ''} on http://{args.host}:{args.port}"
          f"{'/docs' if args.api else ''}", file=sys.stderr)
    if args.api:
        from medtune.serve.api import serve_api

        serve_api(who, args.host, args.port, max_batch=args.max_batch, timeout_s=args.timeout)
    else:
        from medtune.serve.app import launch

        launch(who, args.host, args.port)
    return 0
