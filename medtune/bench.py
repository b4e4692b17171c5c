"""`medtune bench train|eval RECIPE`: throughput of a recipe's training step and of its evaluation.

Training: the recipe's own model, method, data, template, collator (padding or packing), precision
and batch size; timed steps after warm-up, each ended by a device synchronise; the median step time,
non-padding tokens/s, samples/s and peak memory. Model-FLOPs utilisation (MFU) is

    MFU = tokens/s x FLOPs per token / R

where FLOPs per token = k x N + k x 2 x layers x s x d_attn, N the parameters of the matmuls a token
passes (all linear layers and the LM head, not the embedding lookup), s the mean sequence length,
d_attn = heads x head_dim, and k = 4 for adapter methods (forward 2N plus activation gradients 2N;
no weight gradients), 6 for full training; R is the matmul rate measured on this device in the
training dtype (a square matmul of 4096 on a GPU, 2048 on a CPU), not a datasheet figure.

Evaluation: questions/s and non-padding tokens/s of the recipe's eval scorer, with the shared-prefix
cache and without it, and whether the two give identical predictions.

`--shape qwen3-1.7b` builds that architecture with random weights (no download): speed and memory are
real, accuracy is meaningless.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError

SHAPES = Path(__file__).resolve().parent / "resources" / "shapes"


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_rate(device: str, dtype: Any, n: int | None = None, repeats: int = 10) -> float:
    """Measured FLOP/s of a square matmul on this device and dtype."""
    import torch

    n = n or (4096 if device.startswith("cuda") else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0)


def matmul_params(model: Any) -> int:
    """Parameters of the linear layers a token passes (LoRA adapters excluded; LM head included)."""
    import torch

    total = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and "lora_" not in name:
            total += module.weight.numel()
    return total


def _shape_model(shape: str, dtype: Any) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = SHAPES / shape
    if not (folder / "config.json").is_file():
        known = ", ".join(sorted(p.name for p in SHAPES.iterdir()))
        raise MedtuneError(f"unknown shape; shipped shapes: {known}", path=shape, field="--shape")
    config = AutoConfig.from_pretrained(folder)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=dtype)


def _setup(recipe: Any, shape: str | None, tokenizer_name: str | None, device: str | None,
           for_training: bool) -> dict:
    from medtune.backend import select_backend
    from medtune.data.prompts import resolve_template
    from medtune.models import load_causal_lm, load_tokenizer, resolve_model
    from medtune.train import methods

    if recipe.method == "multiple_choice":
        raise MedtuneError("bench measures causal LMs; encoders are small enough to time with medtune train",
                           field="method")
    precision = methods.precision_for(select_backend(device), recipe.train.precision)
    backend = select_backend(device, dtype=methods.load_dtype(recipe.method, precision) if for_training
                             else "auto")
    if for_training and recipe.train.fp8:
        methods.check_fp8(backend)
    tok_ref = resolve_model(tokenizer_name or recipe.model.name)
    tokenizer = load_tokenizer(tok_ref, recipe.model.trust_remote_code)
    if shape:
        model = _shape_model(shape, backend.torch_dtype()).to(backend.device)
        model_name = f"{shape} shape, random weights"
    else:
        model = load_causal_lm(resolve_model(recipe.model.name), backend,
                               trust_remote_code=recipe.model.trust_remote_code,
                               attn_implementation=recipe.model.attn_implementation)
        model_name = recipe.model.name
    vocab = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise MedtuneError(f"the tokenizer has {len(tokenizer)} tokens but the model only {vocab}; pass a "
                           "matching --tokenizer", field="--tokenizer")
    template = resolve_template(recipe.data.template, tokenizer)
    return {"backend": backend, "precision": precision, "tokenizer": tokenizer, "model": model,
            "model_name": model_name, "template": template, "tokenizer_name": tok_ref.name}


def _memory(device: str) -> dict:
    import resource

    import torch

    out = {"host_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}
    if device.startswith("cuda"):
        out["device_peak_allocated_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
        out["device_peak_reserved_gb"] = torch.cuda.max_memory_reserved() / 2 ** 30
    return out


def bench_train(recipe: Any, *, shape: str | None = None, tokenizer: str | None = None, steps: int = 20,
                warmup: int = 5, device: str | None = None, compile: bool = False) -> dict:
    """Time `steps` optimizer steps of the recipe after `warmup` untimed ones."""
    import torch

    from medtune.train import methods
    from medtune.train.examples import PadCollator, build_examples
    from medtune.train.run import load_train_eval

    s = _setup(recipe, shape, tokenizer, device, for_training=True)
    backend, model, tok = s["backend"], s["model"], s["tokenizer"]
    train_items, _, _, _ = load_train_eval(recipe)
    t = recipe.train
    need = (steps + warmup) * t.batch_size * t.grad_accum
    examples = build_examples(train_items, tok, s["template"], recipe.data.target, recipe.data.max_length,
                              recipe.data.loss_on)
    if not examples:
        raise MedtuneError("no training examples", field="data.train")
    g = torch.Generator().manual_seed(t.seed)
    order = torch.randperm(len(examples), generator=g).tolist()
    while len(order) < need:
        order += order
    picked = [examples[i] for i in order[:need]]
    if t.group_by_length and not t.packing:  # the Trainer's length grouping, in spirit: sort within megabatches
        mega = t.batch_size * 50
        picked = [e for k in range(0, len(picked), mega)
                  for e in sorted(picked[k:k + mega], key=lambda e: -len(e["input_ids"]))]
    if t.packing:
        from transformers import DataCollatorWithFlattening

        collate = DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)
    else:
        collate = PadCollator(tok.pad_token_id)

    liger = t.liger and methods.liger_available(backend)
    if liger:  # what the Trainer's use_liger_kernel does
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(model=model)
    model = methods.prepare_for_training(model, recipe, backend)
    model.train()
    if compile:
        model = torch.compile(model)
    params = [p for p in model.parameters() if p.requires_grad]
    fused = backend.device.startswith("cuda")
    opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay, fused=fused)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(s["precision"])
    dev_type = "cuda" if backend.device.startswith("cuda") else "cpu"
    autocast = (lambda: torch.autocast(dev_type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    scaler = torch.amp.GradScaler(dev_type) if s["precision"] == "fp16" else None
    if backend.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    times, tokens, samples, padded, seq_lens = [], [], [], [], []
    it = iter(range(0, need, t.batch_size))
    for step in range(warmup + steps):
        _sync(backend.device)
        t0 = time.perf_counter()
        n_tok = n_pad = n_smp = 0
        lens = []
        for _ in range(t.grad_accum):
            k = next(it)
            feats = picked[k:k + t.batch_size]
            batch = collate(feats)
            real = sum(len(f["input_ids"]) for f in feats)
            n_tok += real
            n_pad += batch["input_ids"].numel()
            n_smp += len(feats)
            lens += [len(f["input_ids"]) for f in feats]
            batch = {k2: v.to(backend.device) for k2, v in batch.items() if hasattr(v, "to")}
            with autocast():
                loss = model(**batch).loss / t.grad_accum
            (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(backend.device)
        if step >= warmup:
            times.append(time.perf_counter() - t0)
            tokens.append(n_tok)
            padded.append(n_pad)
            samples.append(n_smp)
            seq_lens += lens

    step_s = statistics.median(times)
    tok_s = sum(tokens) / sum(times)
    cfg = model.config if hasattr(model, "config") else model.base_model.config
    n_mm = matmul_params(model)
    layers = getattr(cfg, "num_hidden_layers", 0)
    d_attn = getattr(cfg, "num_attention_heads", 0) * (getattr(cfg, "head_dim", None) or
                                                        cfg.hidden_size // max(1, cfg.num_attention_heads))
    s_mean = statistics.mean(seq_lens)
    k = 6 if recipe.method == "full" else 4
    flops_tok = k * n_mm + k * 2 * layers * s_mean * d_attn
    rate = matmul_rate(backend.device, amp_dtype or torch.float32)
    return {
        "kind": "train", "model": s["model_name"], "tokenizer": s["tokenizer_name"], "method": recipe.method,
        "precision": s["precision"], "packing": t.packing, "gradient_checkpointing": recipe.model.gradient_checkpointing,
        "batch_size": t.batch_size, "grad_accum": t.grad_accum, "max_length": recipe.data.max_length,
        "loss_on": recipe.data.loss_on, "template": s["template"], "compile": compile, "liger": liger,
        "fp8": t.fp8, "fused_adamw": fused,
        "steps_timed": steps, "warmup_steps": warmup, "step_s_median": step_s,
        "step_s_min": min(times), "step_s_max": max(times),
        "tokens_per_s": tok_s, "samples_per_s": sum(samples) / sum(times),
        "padding_fraction": 1 - sum(tokens) / max(1, sum(padded)) if not t.packing else 0.0,
        "mean_seq_len": s_mean, "matmul_params": n_mm,
        "flops_per_token": flops_tok, "flops_formula": f"{k}*N + {k}*2*layers*s*d_attn",
        "matmul_rate_flops": rate, "mfu": tok_s * flops_tok / rate,
        "memory": _memory(backend.device), "backend": backend.to_dict(),
    }


def bench_eval(recipe: Any, *, shape: str | None = None, tokenizer: str | None = None, limit: int | None = None,
               batch_size: int | None = None, device: str | None = None, scorer: str | None = None,
               compare_without_prefix: bool = True, data: list[str] | None = None,
               reference: str | None = None) -> dict:
    """Score the questions the recipe evaluates on (its eval sources, or the held-out part of its split;
    or --data) with its eval scorer, timed. Under `accelerate launch`/`torchrun` the processes share them."""
    import torch

    from medtune.backend import default_batch_size, processes
    from medtune.data.prompts import render
    from medtune.data.sources import LoadOptions, load_benchmark
    from medtune.eval.scoring import build_request, common_prefix, score_requests
    from medtune.train.run import load_train_eval

    rank, world = processes()
    recorded = _read_predictions(reference) if reference else None  # before minutes of loading
    s = _setup(recipe, shape, tokenizer, device, for_training=False)
    backend, model, tok = s["backend"], s["model"], s["tokenizer"]
    d = recipe.data
    if data:
        items, _ = load_benchmark(data, LoadOptions(format=d.format, cop_base=d.cop_base))
    else:
        items = load_train_eval(recipe)[1]
    if limit:
        items = items[:limit]
    scorer = scorer or recipe.train.eval_scorer
    bs = batch_size or default_batch_size(backend)
    prompts = [render(it, s["template"], tok, cloze=scorer == "cloze") for it in items]
    reqs = [build_request(tok, p.prompt, p.choices) for p in prompts]
    shared = len(common_prefix(reqs))
    n_tokens = sum(len(r.context) + sum(len(c) for c in r.continuations) for r in reqs)
    model.eval()
    runs = {}
    for label, reuse in (("prefix_cache", True), ("no_prefix_cache", False)):
        if label == "no_prefix_cache" and not compare_without_prefix:
            continue
        score_requests(model, reqs[: min(len(reqs), bs * world)], batch_size=bs, pad_id=tok.pad_token_id,
                       device=backend.device, reuse_prefix=reuse, processes=(rank, world))  # warm-up, in step
        _sync(backend.device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            scores = score_requests(model, reqs, batch_size=bs, pad_id=tok.pad_token_id, device=backend.device,
                                    reuse_prefix=reuse, processes=(rank, world))
        _sync(backend.device)
        wall = time.perf_counter() - t0
        preds = [max(range(len(x.logliks)), key=x.logliks.__getitem__) for x in scores]
        runs[label] = {"seconds": wall, "questions_per_s": len(reqs) / wall, "tokens_per_s": n_tokens / wall,
                       "predictions": preds, "logliks": [x.logliks for x in scores]}
    out = {"kind": "eval", "model": s["model_name"], "tokenizer": s["tokenizer_name"], "scorer": scorer,
           "template": s["template"], "questions": len(reqs), "batch_size": bs, "tokens": n_tokens,
           "shared_prefix_tokens": shared, "backend": backend.to_dict(), "memory": _memory(backend.device),
           "threads": torch.get_num_threads(), "processes": world,
           "questions_from": "--data " + " ".join(data) if data else "the recipe's eval questions"}
    for label, r in runs.items():
        out[label] = {k: v for k, v in r.items() if k not in ("predictions", "logliks")}
    if len(runs) == 2:
        a, b = runs["prefix_cache"], runs["no_prefix_cache"]
        out["identical_predictions"] = sum(x == y for x, y in zip(a["predictions"], b["predictions"]))
        out["max_abs_loglik_difference"] = max(abs(x - y) for ra, rb in zip(a["logliks"], b["logliks"])
                                               for x, y in zip(ra, rb))
        out["speedup"] = b["seconds"] / a["seconds"]
    out["predictions"] = runs["prefix_cache"]["predictions"]
    if recorded is not None:
        from medtune.data.schema import LETTERS

        both = [(recorded[1][it.id], LETTERS[p]) for it, p in zip(items, out["predictions"]) if it.id in recorded[1]]
        if not both:
            raise MedtuneError("no question id in common with the questions benchmarked", path=recorded[0],
                               field="--reference")
        out["reference"] = {"path": recorded[0], "compared": len(both),
                            "identical_predictions": sum(a == b for a, b in both)}
    return out


def _read_predictions(path: str) -> tuple[str, dict[str, str]]:
    """A recorded eval's predicted letter per question id (its folder or predictions.jsonl)."""
    from medtune.eval.compare import read_predictions

    file = Path(path) / "predictions.jsonl" if Path(path).is_dir() else Path(path)
    try:
        rows = read_predictions(file, field="--reference")
    except OSError as e:
        raise MedtuneError(f"cannot read it: {e.strerror or e}", path=str(file), field="--reference") from None
    return str(file), {i: row["predicted"] for i, row in rows.items()}


def format_bench(r: dict) -> str:
    be = r["backend"]
    head = f"{r['kind']} · {r['model']} · {be['kind']} {be['name']}"
    if r["kind"] == "train":
        mem = r["memory"]
        peak = mem.get("device_peak_allocated_gb", mem["host_peak_rss_gb"])
        return "\n".join([head,
                          f"{r['method']} {r['precision']} · batch {r['batch_size']} x {r['grad_accum']} · "
                          f"packing {r['packing']} · grad ckpt {r['gradient_checkpointing']}",
                          f"{'step (median)':<22}{r['step_s_median'] * 1000:>10.1f} ms",
                          f"{'tokens/s (non-pad)':<22}{r['tokens_per_s']:>10.0f}",
                          f"{'samples/s':<22}{r['samples_per_s']:>10.2f}",
                          f"{'padding':<22}{r['padding_fraction']:>10.1%}",
                          f"{'peak memory':<22}{peak:>10.2f} GB",
                          f"{'MFU':<22}{r['mfu']:>10.1%}  ({r['flops_formula']}; matmul rate "
                          f"{r['matmul_rate_flops'] / 1e12:.2f} TFLOP/s measured)"])
    procs = f" · {r['processes']} processes × {r['threads']} threads" if r.get("processes", 1) > 1 else ""
    lines = [head, f"{r['questions']} questions · {r['scorer']} scorer · batch {r['batch_size']} · "
                   f"shared prefix {r['shared_prefix_tokens']} tokens{procs}"]
    for label in ("prefix_cache", "no_prefix_cache"):
        if label in r:
            x = r[label]
            lines.append(f"{label:<18}{x['seconds']:>8.1f} s {x['questions_per_s']:>8.2f} q/s "
                         f"{x['tokens_per_s']:>9.0f} tok/s")
    if "speedup" in r:
        lines.append(f"speed-up {r['speedup']:.2f}x · identical predictions {r['identical_predictions']}/"
                     f"{r['questions']} · max |Δ log-likelihood| {r['max_abs_loglik_difference']:.2e}")
    if "reference" in r:
        ref = r["reference"]
        lines.append(f"identical to {ref['path']}: {ref['identical_predictions']}/{ref['compared']}")
    return "\n".join(lines)


def run_bench(kind: str, recipe_path: str | None, overrides: list[str], *, out: str | None = None,
              vs: str | None = None, **kwargs: Any) -> list[dict]:
    """Run one bench (or two recipes in the same process: --vs) and write JSON."""
    from medtune.backend import processes
    from medtune.config import load_recipe
    from medtune.io import atomic_write_json
    from medtune.manifest import cpu_model, git_commit, package_versions

    results = []
    rank, world = processes()
    first = rank == 0  # under a launcher, the first process prints and writes
    for path in [recipe_path] + ([vs] if vs else []):
        recipe = load_recipe(path, overrides)
        fn = bench_train if kind == "train" else bench_eval
        r = fn(recipe, **kwargs)
        r["recipe"] = path
        results.append(r)
        if first:
            print(format_bench(r), flush=True)
    if not first:
        return results
    doc: dict = {"what": f"medtune bench {kind}", "command": " ".join(["medtune", *sys.argv[1:]]),
                 "processes": world,  # > 1: started by torchrun / accelerate launch
                 "commit": git_commit(), "versions": package_versions(), "cpu": cpu_model(), "cores": os.cpu_count(),
                 "results": [dataclasses.asdict(r) if dataclasses.is_dataclass(r) else r for r in results]}
    if vs:
        keys = ("tokens_per_s", "samples_per_s") if kind == "train" else ()
        if keys:
            doc["ratio"] = {k: results[0][k] / results[1][k] for k in keys}
            print(f"ratio {Path(recipe_path or 'default').stem} / {Path(vs).stem}: "
                  + ", ".join(f"{v:.2f}x {k}" for k, v in doc["ratio"].items()))
    if out:
        atomic_write_json(out, doc)
        print(f"medtune: wrote {out}")
    return results


