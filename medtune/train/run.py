"""`medtune train RECIPE [key=value ...]`: set up, evaluate the base model, train, evaluate, save.

Reads top to bottom like a single training script; the loop itself is the Hugging Face Trainer.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from medtune.train.recipe import Recipe
from medtune.errors import MedtuneError
from medtune.io import atomic_write_json, atomic_write_text, replace_dir


def load_train_eval(recipe: Recipe) -> tuple[list, list, Any, dict]:
    """Training and eval questions: separate sources, or a stable hash split of the training sources."""
    from medtune.data.sources import LoadOptions, load_benchmark
    from medtune.data.split import contamination, split_items

    d = recipe.data
    opts = LoadOptions(format=d.format, cop_base=d.cop_base, on_bad_row=d.on_bad_row)
    items, report = load_benchmark(d.train, opts)
    if d.max_rows:
        items = items[: d.max_rows]
    if d.eval:
        train = items
        evals, _ = load_benchmark(d.eval, opts)
        info = {"how": "separate eval sources", "contamination": contamination(train, evals)}
    else:
        train, evals, info = split_items(items, eval_size=d.eval_size, seed=d.split_seed)
        info = {"how": f"stable hash split of the training sources (seed {d.split_seed}, {len(evals)} held out)",
                **info}
    if d.max_train:
        train = train[: d.max_train]
    if d.max_eval:
        evals = evals[: d.max_eval]
    info.update(train=len(train), eval=len(evals))
    return train, evals, report, info


def _check_resume(out: Path, recipe: Recipe) -> None:
    saved = out / "recipe.yaml"
    if not saved.is_file():
        raise MedtuneError("nothing to resume: no recipe.yaml in the run folder", path=str(out), field="--resume")
    old = yaml.safe_load(saved.read_text("utf-8"))
    new = recipe.to_dict()
    diffs = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if diffs:
        raise MedtuneError(f"the run folder was made with another recipe (differs in: {', '.join(diffs)}); "
                           "resume with the same recipe, or choose a new output_dir", path=str(saved))


def run_train(recipe: Recipe, resume: bool = False) -> dict:
    """Train per the recipe; returns the run summary (also written to RUN/metrics.json)."""
    for key, value in recipe.env.items():  # before the first import of torch (below), for every caller
        os.environ[str(key)] = str(value)
    from transformers import TrainingArguments, set_seed
    from transformers.integrations import TensorBoardCallback

    from medtune.backend import select_backend
    from medtune.data.prompts import resolve_template
    from medtune.eval.compare import compare_runs, format_compare
    from medtune.eval.run import EvalConfig, evaluate_items, format_table
    from medtune.manifest import build_manifest
    from medtune.models import (load_causal_lm, load_encoder, load_tokenizer, merge_for_inference, model_kind,
                                resolve_model)
    from medtune.train import methods
    from medtune.train.examples import PadCollator, build_examples
    from medtune.train.multiple_choice import ChoiceCollator, encode_item
    from medtune.train.trainer import MedtuneTrainer, TerminalLog, last_complete_checkpoint, plot_curves

    t_start = time.perf_counter()
    main = int(os.environ.get("RANK", "0")) == 0  # under accelerate launch / torchrun, rank 0 evaluates and writes
    out = Path(recipe.output_dir)
    if resume:
        _check_resume(out, recipe)
    elif (out / "recipe.yaml").is_file() and any(out.glob("checkpoints/checkpoint-*")):
        raise MedtuneError("this run folder already has checkpoints; pass --resume to continue it, or choose "
                           "another output_dir", path=str(out), field="output_dir")
    out.mkdir(parents=True, exist_ok=True)
    if main:
        atomic_write_text(out / "recipe.yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    set_seed(recipe.train.seed)

    # --- set up: device, data, tokenizer, model -------------------------------------------------
    precision = methods.precision_for(select_backend(), recipe.train.precision)
    backend = select_backend(dtype=methods.load_dtype(recipe.method, precision))
    if recipe.method == "qlora":
        methods.check_qlora(backend)
    if recipe.train.fp8:
        methods.check_fp8(backend)
    train_items, eval_items, data_report, split_info = load_train_eval(recipe)
    ref = resolve_model(recipe.model.name)
    encoder = recipe.method == "multiple_choice"
    if encoder != (model_kind(ref, recipe.model.trust_remote_code) == "encoder"):
        raise MedtuneError(f"method {recipe.method} needs {'an encoder' if encoder else 'a causal LM'}; "
                           f"{ref.name} is {'a causal LM' if encoder else 'an encoder'}", field="model.name")
    tokenizer = load_tokenizer(ref, recipe.model.trust_remote_code)
    template = "none" if encoder else resolve_template(recipe.data.template, tokenizer)
    print(f"medtune train: {recipe.method} on {ref.name} · {len(train_items)} training and {len(eval_items)} "
          f"eval questions ({split_info['how']}) · {backend.kind} {precision}", flush=True)
    if ref.note:
        print(f"medtune: model {ref.name}: {ref.note}", file=sys.stderr)
    if encoder:
        model = load_encoder(ref, backend, recipe.model.trust_remote_code)
    else:
        model = load_causal_lm(ref, backend, trust_remote_code=recipe.model.trust_remote_code,
                               quantization_config=methods.quantization_config(recipe.method),
                               attn_implementation=recipe.model.attn_implementation)
    eval_cfg = EvalConfig(data=list(recipe.data.eval or recipe.data.train), model=recipe.model.name,
                          scorers=[recipe.train.eval_scorer], template=template, seed=recipe.train.seed,
                          progress=sys.stderr.isatty(), distributed=False)  # rank 0 alone evaluates

    # --- evaluate the base model on the eval questions ---------------------------------------
    baseline = None
    if recipe.baseline_eval and main:
        if resume and (out / "baseline" / "metrics.json").is_file():
            import json

            baseline = json.loads((out / "baseline" / "metrics.json").read_text("utf-8"))
        else:
            baseline = evaluate_items(dataclasses.replace(eval_cfg, out=str(out / "baseline")), eval_items,
                                      data_report, model=model, tokenizer=tokenizer)
            print(format_table(baseline, "before training:"), flush=True)

    # --- adapt and train ----------------------------------------------------------------------
    model = methods.prepare_for_training(model, recipe, backend)
    trainable, total = methods.trainable_parameters(model)
    print(f"trainable parameters: {trainable:,} of {total:,} ({trainable / total:.2%})", flush=True)
    if encoder:
        examples = [encode_item(it, tokenizer, recipe.data.max_length) for it in train_items]
    else:
        examples = build_examples(train_items, tokenizer, template, recipe.data.target, recipe.data.max_length,
                                  recipe.data.loss_on)
    from datasets import Dataset

    train_ds = Dataset.from_list([{**e, "length": _n_tokens(e)} for e in examples])
    if encoder:
        collator = ChoiceCollator(tokenizer.pad_token_id)
    elif recipe.train.packing:
        from transformers import DataCollatorWithFlattening

        collator = DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)
    else:
        collator = PadCollator(tokenizer.pad_token_id)
    t = recipe.train
    evaluating = bool(t.eval_steps)
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, learning_rate=t.lr, lr_scheduler_type=t.scheduler,
        warmup_steps=float(t.warmup_ratio), weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm,
        num_train_epochs=t.epochs, max_steps=t.max_steps, logging_steps=t.logging_steps,
        save_strategy="steps", save_steps=t.save_steps, save_total_limit=t.save_total_limit,
        eval_strategy="steps" if evaluating else "no", eval_steps=t.eval_steps,
        load_best_model_at_end=evaluating, metric_for_best_model="accuracy" if evaluating else None,
        greater_is_better=True, bf16=precision == "bf16", fp16=precision == "fp16", seed=t.seed, data_seed=t.seed,
        train_sampling_strategy="group_by_length" if t.group_by_length and not t.packing else "random",
        remove_unused_columns=False, report_to="none", use_cpu=backend.kind == "cpu",
        dataloader_num_workers=0, disable_tqdm=not sys.stderr.isatty(), ddp_find_unused_parameters=False,
        optim="adamw_torch_fused" if backend.kind in ("cuda", "rocm") else "adamw_torch",
        use_liger_kernel=recipe.train.liger and methods.liger_available(backend),
    )
    from torch.utils.tensorboard import SummaryWriter

    callbacks = [TensorBoardCallback(SummaryWriter(str(out / "tensorboard"))), TerminalLog()]
    if t.early_stopping_patience:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=t.early_stopping_patience))
    hint = ("fp16 overflows easily: use train.precision=bf16 where the GPU supports it."
            if precision == "fp16" else "Lower train.lr, or check the data for extreme lengths.")
    trainer = MedtuneTrainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=train_ds.select(range(1)) if evaluating else None,
        data_collator=collator, callbacks=callbacks, mt_eval_items=eval_items, mt_tokenizer=tokenizer,
        mt_template=template, mt_scorer=t.eval_scorer, mt_precision_hint=hint,
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # TerminalLog prints one readable line instead
    ckpt = last_complete_checkpoint(out / "checkpoints") if resume else None
    if resume:
        print(f"resuming from {ckpt}" if ckpt else "no complete checkpoint yet: starting from step 0", flush=True)
    t_train = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    train_s = time.perf_counter() - t_train
    if not main:
        return {"rank": int(os.environ["RANK"]), "steps": result.global_step, "output": str(out)}

    # --- save the adapter (or the full model) atomically --------------------------------------
    final_dir = out / ("model" if recipe.method in ("full", "multiple_choice") else "adapter")
    with replace_dir(final_dir) as staging:
        trainer.model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)

    # --- evaluate the trained model and compare ------------------------------------------------
    model = trainer.model
    model.eval()
    merge_for_inference(model)  # the adapter is saved above; scoring runs the folded weights
    trained = {"adapter": str(final_dir)} if final_dir.name == "adapter" else {"model": str(final_dir)}
    final = evaluate_items(dataclasses.replace(eval_cfg, out=str(out / "final"), **trained),  # manifest hashes it
                           eval_items, data_report, model=model, tokenizer=tokenizer)
    print(format_table(final, "after training:"), flush=True)
    comparison = None
    if baseline is not None:
        comparison = compare_runs(str(out / "baseline"), str(out / "final"), out=str(out))
        print(format_compare(comparison), flush=True)
    history = trainer.state.log_history
    primary = final["primary"]
    mf = final["baselines"]["most_frequent_letter"]
    plot_curves(history, out / "curves.png", baseline["results"][primary]["accuracy"] if baseline else None,
                final["results"][primary]["accuracy"], prior=(mf["letter"], mf["accuracy"]))
    tokens = sum(_n_tokens(e) for e in examples) * (result.global_step * t.batch_size * t.grad_accum
                                                          / max(1, len(examples)))
    summary = {
        "method": recipe.method, "model": ref.name, "precision": precision, "template": template,
        "train_questions": len(train_items), "eval_questions": len(eval_items), "split": split_info,
        "steps": result.global_step, "train_loss": result.training_loss, "train_seconds": train_s,
        "approx_train_tokens_per_s": tokens / train_s if train_s else None,
        "trainable_parameters": trainable, "total_parameters": total,
        "baseline": _brief(baseline), "final": _brief(final),
        "compare": comparison, "best_checkpoint": trainer.state.best_model_checkpoint,
        "output": str(final_dir), "total_seconds": time.perf_counter() - t_start,
    }
    atomic_write_json(out / "metrics.json", summary)
    atomic_write_json(out / "manifest.json", build_manifest(
        recipe=recipe.to_dict(), backend=backend.to_dict(), precision=precision, data=data_report.to_dict(),
        model={"name": ref.name, "path": ref.path, "kind": ref.kind, "note": ref.note}))
    return summary


def _n_tokens(example: dict) -> int:
    ids = example["input_ids"]
    return sum(len(x) for x in ids) if ids and isinstance(ids[0], list) else len(ids)


def _brief(metrics: dict | None) -> dict | None:
    if metrics is None:
        return None
    return {name: {"accuracy": r["accuracy"], "ci95": r["ci95"]} for name, r in metrics["results"].items()} | {
        "baselines": metrics["baselines"]}
