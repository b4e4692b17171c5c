"""The policy GRPO trains and TRL's trainer around it: the starting adapter (fresh, or an SFT one),
GRPOConfig from the recipe, the GRPOTrainer with medtune's NaN guard and one log line per step, and the
trained adapter saved alone."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtune.errors import MedtuneError

if TYPE_CHECKING:
    from medtune.train.grpo import GrpoArgs
    from medtune.train.recipe import Recipe

LOGGED = ("reward", "answer/accuracy", "answer/unparseable_rate", "completions/mean_length", "kl")


def _trainer_class() -> type:
    """TRL's GRPOTrainer with MedtuneTrainer's NaN/inf guard (on the logged loss, in MedtuneTrainer.log) and
    complete-checkpoint marker, through the MRO."""
    from trl import GRPOTrainer

    from medtune.train.trainer import MedtuneTrainer

    return type("MedtuneGRPOTrainer", (MedtuneTrainer, GRPOTrainer), {})


def _log_line(args: Any, state: Any, control: Any, logs: dict | None = None, **_: Any) -> None:
    if logs and state.is_world_process_zero and "reward" in logs:
        parts = [f"{k.split('/')[-1]}={logs[k]:.4g}" for k in LOGGED if isinstance(logs.get(k), (int, float))]
        print(f"step {state.global_step}/{state.max_steps}: " + " ".join(parts), flush=True)


def grpo_config(recipe: Recipe, out: Any, precision: str, backend: Any, use_vllm: bool) -> Any:
    """TRL's GRPOConfig from the recipe (train.* for the optimizer and schedule, grpo.* for sampling)."""
    from trl import GRPOConfig

    t, g = recipe.train, recipe.grpo
    return GRPOConfig(
        output_dir=str(out.checkpoints), per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, learning_rate=t.lr, lr_scheduler_type=t.scheduler,
        warmup_steps=float(t.warmup_ratio), weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm,
        num_train_epochs=t.epochs, max_steps=t.max_steps, logging_steps=t.logging_steps, save_strategy="steps",
        save_steps=t.save_steps, save_total_limit=t.save_total_limit, seed=t.seed, data_seed=t.seed,
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=backend.kind == "cpu",
        gradient_checkpointing=recipe.model.gradient_checkpointing, report_to="none",
        disable_tqdm=not sys.stderr.isatty(), dataloader_num_workers=0, logging_nan_inf_filter=False,
        num_generations=g.num_generations, max_completion_length=g.max_completion_length, beta=g.beta,
        temperature=g.temperature, generation_kwargs={"use_cache": True},
        use_vllm=use_vllm, vllm_mode="colocate", vllm_gpu_memory_utilization=g.vllm_gpu_memory_utilization,
    )


def build_grpo_trainer(recipe: Recipe, run: Any, model: Any, tokenizer: Any, dataset: Any, precision: str,
                       backend: Any, use_vllm: bool) -> Any:
    """The GRPO trainer: the answer (and format) rewards, TensorBoard, one terminal line per log."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    from medtune.train.build import check_engine
    from medtune.train.report import tensorboard_callback
    from medtune.train.rewards import reward_functions

    funcs, weights = reward_functions(recipe.grpo.format_reward_weight)
    args = grpo_config(recipe, run, precision, backend, use_vllm)
    args.reward_weights = weights
    hint = ("fp16 overflows easily: use train.precision=bf16 where the GPU supports it."
            if precision == "fp16" else "Lower train.lr, or check the data for extreme lengths.")
    log = type("GrpoLog", (TrainerCallback,), {"on_log": staticmethod(_log_line)})()
    trainer = _trainer_class()(
        model=model, reward_funcs=funcs, args=args, train_dataset=dataset, processing_class=tokenizer,
        callbacks=[c for c in (tensorboard_callback(run.tensorboard), log) if c is not None],
        mt_precision_hint=hint)
    trainer.remove_callback(PrinterCallback)  # the GrpoLog line instead
    check_engine(trainer)
    return trainer


def start_policy(model: Any, recipe: Recipe, g: GrpoArgs) -> Any:
    """The policy to train: the loaded base with a fresh LoRA adapter (the method's wrapping), or with the
    SFT adapter of `grpo.from_adapter` loaded trainable."""
    from medtune.train import methods

    if not g.from_adapter:
        return methods.adapt(model, recipe)
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, g.from_adapter, is_trainable=True)
    except (OSError, ValueError) as err:
        raise MedtuneError(f"cannot load the adapter: {' '.join(str(err).split())[:300]}", path=g.from_adapter,
                           field="grpo.from_adapter") from None


def save_adapter(model: Any, tokenizer: Any, folder: Path, write: bool = True) -> Path:
    """The trained adapter alone (not TRL's frozen reference copy), atomically where `write` (the first
    process); the copy is then dropped in every process."""
    from medtune.io import replace_dir

    if write:
        with replace_dir(folder) as staging:
            model.save_pretrained(staging, selected_adapters=["default"])
            tokenizer.save_pretrained(staging)
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")
    return folder
