"""`medtune serve --ui | --api`."""

from __future__ import annotations

import argparse
import os
import sys

from medtune.cli.common import add_answer_options, answerer
from medtune.errors import MedtuneError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """App or API, address, who may ask, the limits, and which model answers."""
    from medtune.serve.limits import MAX_BODY_BYTES, MAX_QUEUE_QUESTIONS, TOKEN_ENV

    p.add_argument("--ui", action="store_true", help="the Gradio app")
    p.add_argument("--api", action="store_true", help="the HTTP API (FastAPI; OpenAPI at /docs)")
    p.add_argument("--host", default="127.0.0.1", help="an address other than loopback needs --token or "
                                                       "--allow-unauthenticated")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--token", help=f"API: the bearer token /v1/ requires; app: the password of the login form "
                                   f"(default ${TOKEN_ENV}, which keeps it out of the process list)")
    p.add_argument("--allow-unauthenticated", action="store_true",
                   help="serve without a token on an address other machines can reach")
    p.add_argument("--max-batch", type=int, default=32, help="API: questions per shared forward pass")
    p.add_argument("--max-queue", type=int, default=MAX_QUEUE_QUESTIONS,
                   help="questions waiting at most (API: more get 503 with Retry-After; app: requests waiting)")
    p.add_argument("--max-body", type=int, default=MAX_BODY_BYTES, help="API: request body bytes at most (413)")
    p.add_argument("--timeout", type=float, default=30.0, help="API: seconds before a request gets 504")
    add_answer_options(p)


def main(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from medtune.serve.limits import TOKEN_ENV, check_exposure

    if args.ui == args.api:
        raise MedtuneError("choose one: --ui (the Gradio app) or --api (the HTTP API)", field="--ui/--api")
    token = args.token or os.environ.get(TOKEN_ENV) or None
    check_exposure(args.host, token, args.allow_unauthenticated)  # before minutes of model loading
    who = answerer(args)
    print(f"medtune: serving {who.ref.name}"
          f"{' + ' + who.source.adapter if who.source.adapter else ''} on http://{args.host}:{args.port}"
          f"{'/docs' if args.api else ''}{' (token required)' if token else ''}", file=sys.stderr)
    if args.api:
        from medtune.serve.api import serve_api

        serve_api(who, args.host, args.port, max_batch=args.max_batch, timeout_s=args.timeout,
                  max_queue=args.max_queue, token=token, max_body=args.max_body)
    else:
        from medtune.serve.app import launch

        launch(who, args.host, args.port, token=token, max_queue=args.max_queue)
    return 0
