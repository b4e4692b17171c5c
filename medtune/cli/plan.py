"""`medtune plan`: will a model fit for training, per part, method and GPU."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Model, method, GPU and the training shape."""
    p.add_argument("--model", required=True, help="local folder, config.json, shipped shape (qwen3-1.7b), "
                                                  "embedded name or Hub id; only config.json is read")
    p.add_argument("--method", default="lora", help="qlora, lora, dora or full")
    p.add_argument("--gpu", default="h100", help="mi300x, mi325x, mi250, h100, h200, a100-40, a100-80, rx7900xtx, "
                                                "rtx4090 or cpu")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch", type=int, default=8, help="micro-batch size")
    p.add_argument("--grad-ckpt", action="store_true", help="with gradient checkpointing")
    p.add_argument("--r", type=int, default=16, help="LoRA rank")
    p.add_argument("--table", action="store_true", help="methods x GPUs: the largest micro-batch that fits")
    p.add_argument("--json", action="store_true")


def main(args: argparse.Namespace) -> int:
    """Print the plan; exit 1 when it does not fit."""
    from medtune.plan import format_plan, plan, table

    if args.table:
        print(table(args.model, batch=args.batch, seq_len=args.seq_len, grad_ckpt=args.grad_ckpt))
        return 0
    result = plan(args.model, args.method, args.gpu, batch=args.batch, seq_len=args.seq_len,
                  grad_ckpt=args.grad_ckpt, r=args.r)
    print(json.dumps(result, indent=2) if args.json else format_plan(result))
    return 0 if result["estimate"]["fits"] else 1
