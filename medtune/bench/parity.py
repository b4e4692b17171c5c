"""`medtune bench parity`: does the GPU score a question the way the CPU does?

A fixed random-weight model (a shape's architecture, seeded, fp32, built on the CPU so that both sides hold
the same weights) scores the same questions with the letter scorer on the CPU (the reference) and on the GPU:
first in fp32 (TF32 off), then with the weights in bf16. Reported per comparison: how many questions get
the same predicted letter, the flips that remain when a disagreement counts only where the reference's two
log-likelihoods differ by more than the dtype's tie tolerance (`TIE_TOLERANCE`), and max |Δ log-likelihood|.
Targets: 100% in fp32, >= 99% in bf16 with the tolerance. Random weights put the letters close together;
the median margin between the reference's top two letters is reported so the tolerance can be judged.

Without a GPU the comparison is CPU fp32 against CPU fp32 with another batch size and no prefix cache, then
CPU bf16, and the result says so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from medtune.bench.common import TIE_TOLERANCE, agreement, shape_model

TARGETS = {"float32": 1.0, "bfloat16": 0.99}


def _score(model: Any, reqs: list, tok: Any, device: str, batch_size: int, reuse: bool) -> tuple[list, float]:
    from medtune.bench.peak import sync
    from medtune.eval.scoring import score_requests

    sync(device)
    t0 = time.perf_counter()
    scores = score_requests(model, reqs, batch_size=batch_size, pad_id=tok.pad_token_id, device=device,
                            reuse_prefix=reuse)
    sync(device)
    return [list(map(float, s.logliks)) for s in scores], time.perf_counter() - t0


def _margin(logliks: list) -> float:
    top = sorted(logliks, reverse=True)
    return top[0] - top[1]


def run_parity(*, shape: str = "qwen3-1.7b", layers: int | None = 4, tokenizer: str = "qwen2.5",
               data: str = "medmcqa-dev", limit: int | None = 200, batch_size: int = 16, device: str | None = None,
               template: str = "auto", seed: int = 0) -> dict:
    """CPU fp32 reference against the GPU in fp32 and bf16 (or, without a GPU, against the CPU itself)."""
    import torch

    from medtune.backend import select_backend
    from medtune.data.prompts import render, resolve_template
    from medtune.data.sources import load_benchmark
    from medtune.eval.scoring import build_request
    from medtune.models import load_tokenizer, resolve_tokenizer

    target = select_backend(device)
    tok = load_tokenizer(resolve_tokenizer(tokenizer))
    items, _ = load_benchmark([data])
    items = items[:limit] if limit else items
    tpl = resolve_template(template, tok)
    reqs = [build_request(tok, p.prompt, p.choices) for p in (render(it, tpl, tok) for it in items)]
    overrides = {"num_hidden_layers": layers} if layers else {}
    model = shape_model(shape, torch.float32, "cpu", seed=seed, **overrides).eval()
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        from medtune.errors import MedtuneError

        raise MedtuneError("the tokenizer has more tokens than the shape's vocabulary", field="--tokenizer")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ref, ref_s = _score(model, reqs, tok, "cpu", batch_size, True)
    gpu = target.device.startswith("cuda")
    out: dict = {"kind": "parity", "shape": shape, "layers": model.config.num_hidden_layers, "seed": seed,
                 "parameters": sum(p.numel() for p in model.parameters()), "tokenizer": tokenizer, "data": data,
                 "questions": len(reqs), "template": tpl, "batch_size": batch_size,
                 "reference": {"device": "cpu", "dtype": "float32", "prefix_cache": True, "seconds": ref_s},
                 "median_top2_margin": statistics.median(_margin(x) for x in ref),
                 "gpu": target.name if gpu else None, "comparisons": {}}
    if gpu:
        model.to(target.device)
        runs = [("float32", target.device, batch_size, True), ("bfloat16", target.device, batch_size, True)]
        out["what"] = f"CPU fp32 against {target.name} ({target.kind})"
    else:
        other = max(1, batch_size // 2)
        runs = [("float32", "cpu", other, False), ("bfloat16", "cpu", other, False)]
        out["what"] = (f"no GPU here: CPU fp32 (batch {batch_size}, prefix cache) against CPU fp32 and bf16 "
                       f"(batch {other}, no prefix cache); not a cross-device figure")
    for dtype, dev, bs, reuse in runs:
        model.to(getattr(torch, dtype))
        got, secs = _score(model, reqs, tok, dev, bs, reuse)
        agree = agreement(ref, got, TIE_TOLERANCE[dtype])
        agree.update(device=dev, dtype=dtype, batch_size=bs, prefix_cache=reuse, seconds=secs,
                     target=TARGETS[dtype], met=agree["agreement_with_tolerance"] >= TARGETS[dtype])
        out["comparisons"][dtype] = agree
    return out


def format_parity(r: dict) -> str:
    """The parity result as lines of text."""
    lines = [f"parity · {r['what']}",
             f"{r['shape']} shape, {r['layers']} layers, random weights (seed {r['seed']}) · {r['questions']} "
             f"questions · median margin between the reference's top two letters {r['median_top2_margin']:.2e}"]
    for dtype, c in r["comparisons"].items():
        lines.append(f"{dtype:<9} identical {c['identical']}/{c['questions']} · flips beyond the tie tolerance "
                     f"({c['tolerance']:g}) {c['flips_beyond_tolerance']} -> agreement "
                     f"{c['agreement_with_tolerance']:.2%} (target {c['target']:.0%}: "
                     f"{'met' if c['met'] else 'NOT met'}) · max |Δ log-likelihood| "
                     f"{c['max_abs_loglik_difference']:.2e}")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The model shape, questions and device of a parity run (defaults: `run_parity`'s)."""
    p.add_argument("--shape", help="shipped shape or a folder with config.json (default qwen3-1.7b)")
    p.add_argument("--layers", type=int, help="keep this many layers (default 4; 0: all); the CPU side is the "
                                              "slow one")
    p.add_argument("--tokenizer", help="shipped tokenizer name or a tokenizer folder (default qwen2.5)")
    p.add_argument("--data", help="questions to score, a file or a built-in name (default medmcqa-dev)")
    p.add_argument("--limit", type=int, help="score the first N questions (default 200; 0: all)")
    p.add_argument("--batch-size", type=int, help="questions per pass (default 16)")
    p.add_argument("--device", help="the device compared with the CPU (default: the first GPU, else the CPU)")
    p.add_argument("--seed", type=int, help="the random weights' seed (default 0)")
    p.add_argument("--out", help="write the result as JSON here")


def main(args: argparse.Namespace) -> int:
    """Run it, print it, write it; exit 1 when a target is missed."""
    from medtune.io import atomic_write_json
    from medtune.manifest import git_commit, package_versions

    given = {k: getattr(args, k, None) for k in ("shape", "layers", "tokenizer", "data", "limit", "batch_size",
                                                 "device", "seed")}
    kwargs = {k: v for k, v in given.items() if v is not None}
    for k in ("layers", "limit"):  # 0: all
        if kwargs.get(k) == 0:
            kwargs[k] = None
    r = run_parity(**kwargs)
    print(format_parity(r))
    if args.out:
        atomic_write_json(args.out, {"what": "medtune bench parity", "command": " ".join(sys.argv),
                                     "commit": git_commit(), "versions": package_versions(), "results": [r]})
        print(f"medtune: wrote {args.out}")
    return 0 if all(c["met"] for c in r["comparisons"].values()) else 1


if __name__ == "__main__":
    from medtune.errors import MedtuneError

    parser = argparse.ArgumentParser(prog="python -m medtune.bench.parity", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        raise SystemExit(main(parser.parse_args()))
    except MedtuneError as err:
        print(str(err) if err.path else f"medtune: error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code)
