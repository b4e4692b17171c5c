"""`medtune bench train`: see medtune.bench."""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

from medtune.errors import MedtuneError

from medtune.bench.common import matmul_params, matmul_rate, memory, setup, sync


def bench_train(recipe: Any, *, shape: str | None = None, tokenizer: str | None = None, steps: int = 20,
                warmup: int = 5, device: str | None = None, compile: bool = False) -> dict:
    """Time `steps` optimizer steps of the recipe after `warmup` untimed ones."""
    import torch

    from medtune.train import methods
    from medtune.train.examples import PadCollator, build_examples
    from medtune.train.run import load_train_eval

    s = setup(recipe, shape, tokenizer, device, for_training=True)
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
        sync(backend.device)
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
        sync(backend.device)
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
        "memory": memory(backend.device), "backend": backend.to_dict(),
    }
