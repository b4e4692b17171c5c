"""`medtune bench train`: the Trainer that `medtune train` builds (medtune.train.build.build_trainer),
timed by a callback: the median optimizer step after warm-up, synchronised with the device."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError

from medtune.bench import peak
from medtune.bench.common import matmul_params, memory, peak_rate, setup


class CountingCollator:
    """Wraps a collator and records, per micro-batch, the real and the padded token counts."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.batches: list[tuple[int, int, int, list[int]]] = []  # (real, padded, samples, lengths)

    def __call__(self, features: list[dict]) -> dict:
        batch = self.inner(features)
        lens = [len(f["input_ids"]) for f in features]
        self.batches.append((sum(lens), batch["input_ids"].numel(), len(features), lens))
        return batch


def bench_train(recipe: Any, *, shape: str | None = None, tokenizer: str | None = None, steps: int = 20,
                warmup: int = 5, device: str | None = None, compile: bool = False,
                head_on_labels: bool = True) -> dict:
    """Time `steps` optimizer steps of the recipe's own Trainer after `warmup` untimed ones
    (`head_on_labels=False`: the LM head over every position, as before medtune computed it on labels only)."""
    import torch

    from medtune.train import methods
    from medtune.train.build import build_trainer
    from medtune.train.trainer import StepTimer
    from medtune.train.run import load_train_eval_questions
    from medtune.train.trainset import cached_examples

    s = setup(recipe, shape, tokenizer, device, for_training=True)
    backend, tok = s["backend"], s["tokenizer"]
    questions = load_train_eval_questions(recipe).train  # options shuffled as `medtune train` has them
    examples = cached_examples(questions, tok, recipe, s["template"], False, quiet=True)
    if not examples:
        raise MedtuneError("no training examples", field="data.train")
    model = methods.prepare_for_training(s["model"], recipe, backend)
    timer = StepTimer(backend.device)
    with tempfile.TemporaryDirectory(prefix="medtune-bench-") as tmp:
        trainer = build_trainer(recipe, model, tok, examples, backend=backend, precision=s["precision"],
                                template=s["template"], encoder=False, folder=Path(tmp), callbacks=[timer],
                                max_steps=warmup + steps, save_strategy="no", eval_strategy="no",
                                load_best_model_at_end=False, metric_for_best_model=None,
                                logging_steps=10 ** 9, torch_compile=compile,
                                letters=[it.answer_index for it in questions])
        trainer.mt_head_on_labels = trainer.mt_head_on_labels and head_on_labels
        counter = CountingCollator(trainer.data_collator)
        trainer.data_collator = counter
        if backend.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        before = peak.measure(backend.device) if backend.device == "cpu" else {}
        trainer.train()
    return _result(recipe, s, trainer, model, timer.times, counter.batches, steps, warmup, compile, before)


def registry_flops(recipe: Any, cfg: Any, model: Any = None) -> tuple[float, dict]:
    """FLOPs a trained token costs by the method's registry entry, on the planner's parameter count (what
    `medtune plan` prints for this model, method and lora.layers); other architectures: the model's linears."""
    from medtune.plan import Arch, count_parameters
    from medtune.train.methods import adapted_layers, get_method

    method = get_method(recipe.method)
    try:
        a = Arch.from_config(cfg.to_dict())
        linear, layers = count_parameters(a)["linear"], a.layers
    except MedtuneError:
        linear, layers = matmul_params(model), getattr(cfg, "num_hidden_layers", 1)
    idx = adapted_layers(recipe.lora.layers, layers) if not method.trains_all else None
    backward = layers - min(idx) if idx else None
    flops = method.flops_per_token(linear, layers, backward)
    return flops, {"linear": linear, "layers": layers, "backward_layers": backward or layers, "k": flops / linear}


def _result(recipe: Any, s: dict, trainer: Any, model: Any, times_all: list[float], batches: list, steps: int,
            warmup: int, compile: bool, before: dict) -> dict:
    t = recipe.train
    ga = t.grad_accum
    times = times_all[warmup:]
    timed = batches[warmup * ga:(warmup + len(times)) * ga]
    tokens, padded = sum(b[0] for b in timed), sum(b[1] for b in timed)
    samples, seq_lens = sum(b[2] for b in timed), [n for b in timed for n in b[3]]
    step_s, total_s = statistics.median(times), sum(times)
    backend = s["backend"]
    cfg = model.config if hasattr(model, "config") else model.base_model.config
    layers = getattr(cfg, "num_hidden_layers", 0)
    d_attn = getattr(cfg, "num_attention_heads", 0) * (getattr(cfg, "head_dim", None) or
                                                        cfg.hidden_size // max(1, cfg.num_attention_heads))
    s_mean = statistics.mean(seq_lens)
    flops_tok, count = registry_flops(recipe, cfg, model)
    attn_tok = (count["k"]) * 2 * layers * s_mean * d_attn  # attention's own products: reported, not counted
    tok_s = tokens / total_s
    if t.fp8 or backend.device != "cpu":
        rate, rate_what = peak_rate(backend.device, s["precision"], fp8=t.fp8)
        peaks = {"float32" if s["precision"] == "fp32" else "bfloat16": {"flops_per_s": rate, "of": rate_what}}
    else:
        peaks = peak.limit(before, peak.measure(backend.device))
        rate, rate_what = peaks["float32"]["flops_per_s"], "float32 matmul measured before and after, the better"
    dtype = {"bf16": "bfloat16", "fp16": "float16"}.get(s["precision"], "float32")
    return {
        "kind": "train", "loop": "medtune.train.build.build_trainer (the Trainer of medtune train)",
        "model": s["model_name"], "tokenizer": s["tokenizer_name"], "method": recipe.method,
        "precision": s["precision"], "packing": t.packing, "gradient_checkpointing": recipe.model.gradient_checkpointing,
        "batch_size": t.batch_size, "grad_accum": ga, "max_length": recipe.data.max_length,
        "loss_on": recipe.data.loss_on, "template": s["template"], "compile": compile,
        "liger": bool(trainer.args.use_liger_kernel), "head_on_labels": bool(trainer.mt_head_on_labels),
        "fp8": t.fp8, "fused_adamw": trainer.args.optim == "adamw_torch_fused",
        "steps_timed": len(times), "warmup_steps": warmup, "step_s_median": step_s,
        "step_s_min": min(times), "step_s_max": max(times),
        "tokens_per_s": tok_s, "median_step_tokens_per_s": tokens / len(times) / step_s,
        "samples_per_s": samples / total_s,
        "padding_fraction": 1 - tokens / max(1, padded) if not t.packing else 0.0,
        "mean_seq_len": s_mean, "matmul_params": count["linear"], "flops_count": count,
        "flops_per_token": flops_tok, "attention_flops_per_token": attn_tok,
        "flops_formula": "the method registry's count (Method.flops_per_token, as medtune plan)",
        "matmul_rate_flops": rate, "matmul_rate_of": rate_what, "matmul_peak": peaks,
        "cpu_bf16_instructions": peak.cpu_bf16(), "mfu": tok_s * flops_tok / rate,
        "fraction_of_peak": peak.fraction(tok_s * flops_tok, peaks, dtype),
        "memory": memory(backend.device), "backend": backend.to_dict(),
    }
