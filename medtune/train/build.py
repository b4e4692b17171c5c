"""`build_trainer`: the one Trainer that `medtune train` runs and `medtune bench train` times."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from medtune.train.trainset import ExampleList

if TYPE_CHECKING:
    from medtune.train.recipe import Recipe


def make_collator(recipe: Recipe, tokenizer: Any, encoder: bool) -> Any:
    """Options padded per question (encoders), padding-free packing, or right-padding."""
    if encoder:
        from medtune.eval.choice import ChoiceCollator

        return ChoiceCollator(tokenizer.pad_token_id)
    from medtune.train.examples import PadCollator, pack_collator

    return pack_collator() if recipe.train.packing else PadCollator(tokenizer.pad_token_id)


def training_arguments(recipe: Recipe, precision: str, backend: Any, folder: Path, liger: bool,
                       evaluating: bool, **overrides: Any) -> Any:
    """TrainingArguments from the recipe (the one place they are spelled)."""
    from transformers import TrainingArguments

    from medtune.train.sampling import length_grouping

    t = recipe.train
    kwargs = dict(
        output_dir=str(folder), per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, learning_rate=t.lr, lr_scheduler_type=t.scheduler,
        warmup_steps=float(t.warmup_ratio), weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm,
        num_train_epochs=t.epochs, max_steps=t.max_steps, logging_steps=t.logging_steps,
        save_strategy="steps", save_steps=t.save_steps, save_total_limit=t.save_total_limit,
        eval_strategy="steps" if evaluating else "no", eval_steps=t.eval_steps,
        load_best_model_at_end=evaluating, metric_for_best_model="accuracy" if evaluating else None,
        greater_is_better=True, bf16=precision == "bf16", fp16=precision == "fp16", seed=t.seed, data_seed=t.seed,
        **length_grouping(t.group_by_length and not t.packing),
        remove_unused_columns=False, report_to="none", use_cpu=backend.kind == "cpu",
        dataloader_num_workers=0, disable_tqdm=not sys.stderr.isatty(), ddp_find_unused_parameters=False,
        optim="adamw_torch_fused" if backend.kind in ("cuda", "rocm") else "adamw_torch",
        use_liger_kernel=liger,
        logging_nan_inf_filter=False,  # its per-step isnan check syncs; medtune's guard reads the logged loss
    )
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def precision_hint(precision: str) -> str:
    """What to try when the loss turns NaN/inf."""
    return ("fp16 overflows easily: use train.precision=bf16 where the GPU supports it."
            if precision == "fp16" else "Lower train.lr, or check the data for extreme lengths.")


def build_trainer(recipe: Recipe, model: Any, tokenizer: Any, examples: list[dict], *, backend: Any, precision: str,
                  template: str, encoder: bool, folder: Path, selection: Sequence = (),
                  callbacks: Sequence[Any] = (), letters: Sequence[int] | None = None,
                  **arg_overrides: Any) -> Any:
    """The MedtuneTrainer for a prepared (adapted) model and tokenized examples; `selection`: questions
    scored every train.eval_steps to pick the best checkpoint (never the reported eval set); `letters`: each
    example's gold answer index, for steps balanced over the letters (train.balance_letters)."""
    from transformers.trainer_callback import PrinterCallback

    from medtune.train import methods
    from medtune.train.trainer import MedtuneTrainer, TerminalLog

    t = recipe.train
    evaluating = bool(t.eval_steps) and bool(selection)
    liger = t.liger and methods.liger_available(backend)
    args = training_arguments(recipe, precision, backend, folder, liger, evaluating, **arg_overrides)
    data = ExampleList(examples)
    cbs = [c for c in callbacks if c is not None] + [TerminalLog()]
    if t.early_stopping_patience and evaluating:
        from transformers import EarlyStoppingCallback

        cbs.append(EarlyStoppingCallback(early_stopping_patience=t.early_stopping_patience))
    trainer = MedtuneTrainer(
        model=model, args=args, train_dataset=data, eval_dataset=ExampleList(examples[:1]) if evaluating else None,
        data_collator=make_collator(recipe, tokenizer, encoder), callbacks=cbs, mt_eval_items=selection,
        mt_tokenizer=tokenizer, mt_template=template, mt_scorer=t.eval_scorer,
        mt_precision_hint=precision_hint(precision), mt_lengths=data.lengths,
        mt_letters=letters if t.balance_letters and letters is not None else None,
    )
    trainer.remove_callback(PrinterCallback)  # TerminalLog prints one readable line instead
    check_engine(trainer)
    return trainer


def check_engine(trainer: Any) -> None:
    """A launcher's FSDP that accelerate did not engage stops the run: never a silent DDP run under an FSDP
    config. accelerate (1.16) sets FSDP only for accelerator process groups (accelerate/state.py:947-977,
    AcceleratorState.__init__: MULTI_GPU/XPU/NPU/...); CPU processes are MULTI_CPU (state.py:769), which
    Accelerator.prepare_model wraps in DDP (accelerator.py:2030). DeepSpeed does engage on CPUs."""
    import os

    from medtune.errors import MedtuneError

    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and not trainer.is_fsdp_enabled:
        kind = str(trainer.accelerator.distributed_type).split(".")[-1]
        how = "as plain data parallel" if kind == "MULTI_CPU" else "unsharded"
        raise MedtuneError(f"the accelerate config asks for FSDP, but accelerate sets FSDP only for GPU/XPU/NPU "
                           f"process groups (accelerate/state.py, AcceleratorState) and these processes are {kind}, "
                           f"which it would train {how}; on CPUs launch with torchrun "
                           f"(docs/multinode.md); this config is for GPUs", field="distributed_type")
