"""`medtune bench eval`: see medtune.bench."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError

from medtune.bench.common import TIE_TOLERANCE, agreement, memory, setup, sync


def bench_eval(recipe: Any, *, shape: str | None = None, tokenizer: str | None = None, limit: int | None = None,
               batch_size: int | None = None, device: str | None = None, scorer: str | None = None,
               compare_without_prefix: bool = True, data: list[str] | None = None,
               reference: str | None = None, dtype: str | None = None) -> dict:
    """Score the questions the recipe evaluates on (its eval sources, or the held-out part of its split;
    or --data) with its eval scorer, timed, and set the FLOP/s against the matmul rate measured before and
    after (medtune.bench.peak). `dtype`: cast the model (bfloat16 on a CPU with bf16 instructions).
    Under `accelerate launch`/`torchrun` the processes share them."""
    import torch

    from medtune.bench import peak

    from medtune.backend import default_batch_size, processes
    from medtune.data.prompts import render
    from medtune.eval.scoring import build_request, common_prefix

    world = processes()[1]
    recorded = _read_predictions(reference) if reference else None  # before minutes of loading
    s = setup(recipe, shape, tokenizer, device, for_training=False)
    backend, tok = s["backend"], s["tokenizer"]
    run_dtype = dtype or backend.dtype
    if dtype:
        s["model"].to(getattr(torch, dtype))
    items = _questions(recipe, data, limit)
    scorer = scorer or recipe.train.eval_scorer
    bs = batch_size or default_batch_size(backend)
    reqs = [build_request(tok, p.prompt, p.choices)
            for p in (render(it, s["template"], tok, cloze=scorer == "cloze") for it in items)]
    shared = len(common_prefix(reqs))
    n_tokens = sum(len(r.context) + sum(len(c) for c in r.continuations) for r in reqs)  # the questions' own
    s["model"].eval()
    before = peak.measure(backend.device)
    runs = {label: _timed(s, reqs, bs, reuse, n_tokens, shared)
            for label, reuse in (("prefix_cache", True), ("no_prefix_cache", False))
            if reuse or compare_without_prefix}
    peaks = peak.limit(before, peak.measure(backend.device))
    n_linear = peak.decoder_linear_params(s["model"])
    for r in runs.values():  # 2N per token that ran through the model
        r["flops"] = 2 * n_linear * r["processed_tokens"]
        r["fraction_of_peak"] = peak.fraction(r["flops"] / r["seconds"], peaks, run_dtype)
    out = {"kind": "eval", "model": s["model_name"], "tokenizer": s["tokenizer_name"], "scorer": scorer,
           "template": s["template"], "questions": len(reqs), "batch_size": bs, "question_tokens": n_tokens,
           "dtype": run_dtype, "shared_prefix_tokens": shared, "backend": backend.to_dict(),
           "matmul_peak": peaks, "cpu_bf16_instructions": peak.cpu_bf16(), "linear_params": n_linear,
           "flops_formula": "2 x N x processed tokens (N: decoder linear weights; LM head and attention products "
                            "not counted)",
           "memory": memory(backend.device), "threads": torch.get_num_threads(), "processes": world,
           "questions_from": "--data " + " ".join(data) if data else "the recipe's eval questions"}
    for label, r in runs.items():
        out[label] = {k: v for k, v in r.items() if k not in ("predictions", "logliks")}
    if len(runs) == 2:
        out.update(_agreement(runs, run_dtype))
    out["predictions"] = runs["prefix_cache"]["predictions"]
    if recorded is not None:
        out["reference"] = _against_reference(recorded, items, out["predictions"])
    return out


def _questions(recipe: Any, data: list[str] | None, limit: int | None) -> list:
    """--data's questions, else the recipe's reported eval questions; the first `limit`."""
    from medtune.data.sources import LoadOptions, load_benchmark
    from medtune.train.trainset import load_train_eval

    d = recipe.data
    items = load_benchmark(data, LoadOptions(format=d.format, cop_base=d.cop_base))[0] if data else \
        load_train_eval(recipe)[1]
    return items[:limit] if limit else items


def _timed(s: dict, reqs: list, bs: int, reuse: bool, n_tokens: int, shared: int) -> dict:
    """One warmed-up, synchronised scoring pass over every request, with or without the prefix cache."""
    import torch

    from medtune.backend import processes
    from medtune.eval.scoring import score_requests

    model, tok, device = s["model"], s["tokenizer"], s["backend"].device
    rank, world = processes()
    score_requests(model, reqs[: min(len(reqs), bs * world)], batch_size=bs, pad_id=tok.pad_token_id,
                   device=device, reuse_prefix=reuse, processes=(rank, world))  # warm-up, in step
    sync(device)
    stats: dict = {}
    t0 = time.perf_counter()
    with torch.inference_mode():
        scores = score_requests(model, reqs, batch_size=bs, pad_id=tok.pad_token_id, device=device,
                                reuse_prefix=reuse, processes=(rank, world), stats=stats)
    sync(device)
    wall = time.perf_counter() - t0
    # tokens that ran through the model: the shared prefix once (cached run), no padding
    processed = stats.get("processed") or (n_tokens - (len(reqs) - 1) * shared if reuse else n_tokens)
    return {"seconds": wall, "questions_per_s": len(reqs) / wall, "processed_tokens": processed,
            "tokens_per_s": processed / wall, "question_tokens_per_s": n_tokens / wall,
            "padded_positions": stats.get("padded"),
            "predictions": [max(range(len(x.logliks)), key=x.logliks.__getitem__) for x in scores],
            "logliks": [x.logliks for x in scores]}


def _agreement(runs: dict, dtype: str) -> dict:
    """Prefix cache against no cache: identical predictions, flips beyond the dtype's tie tolerance, speed-up."""
    a, b = runs["prefix_cache"], runs["no_prefix_cache"]
    agree = agreement(b["logliks"], a["logliks"], TIE_TOLERANCE.get(dtype, 1e-4))
    return {"identical_predictions": agree["identical"], "flips_beyond_tolerance": agree["flips_beyond_tolerance"],
            "tie_tolerance": agree["tolerance"], "max_abs_loglik_difference": agree["max_abs_loglik_difference"],
            "speedup": b["seconds"] / a["seconds"]}


def _against_reference(recorded: tuple[str, dict[str, str]], items: list, predictions: list[int]) -> dict:
    """How many predictions equal a recorded eval's, matched by question id."""
    from medtune.data.schema import LETTERS

    both = [(recorded[1][it.id], LETTERS[p]) for it, p in zip(items, predictions) if it.id in recorded[1]]
    if not both:
        raise MedtuneError("no question id in common with the questions benchmarked", path=recorded[0],
                           field="--reference")
    return {"path": recorded[0], "compared": len(both), "identical_predictions": sum(a == b for a, b in both)}


def _read_predictions(path: str) -> tuple[str, dict[str, str]]:
    """A recorded eval's predicted letter per question id (its folder or predictions.jsonl)."""
    from medtune.eval.compare import read_predictions

    file = Path(path) / "predictions.jsonl" if Path(path).is_dir() else Path(path)
    try:
        rows = read_predictions(file, field="--reference")
    except OSError as e:
        raise MedtuneError(f"cannot read it: {e.strerror or e}", path=str(file), field="--reference") from None
    return str(file), {i: row["predicted"] for i, row in rows.items()}
