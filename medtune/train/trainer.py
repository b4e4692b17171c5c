"""The Hugging Face Trainer, with what medtune adds: the LM head only where labels are, accuracy on the
selection set as the eval metric, a NaN/inf guard without a per-step sync, checkpoints that count only
once complete."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any, Sequence

from transformers import Trainer, TrainerCallback

from medtune.errors import MedtuneError
from medtune.io import atomic_write_json
from medtune.train.tokenize import IGNORE

COMPLETE = "medtune-complete.json"
SELECTION_BATCH = 8  # questions per scoring pass on the selection set during training
_CKPT = re.compile(r"^checkpoint-(\d+)$")


class NonFiniteLoss(MedtuneError):
    """The loss became NaN or inf; the run stopped before a checkpoint of the bad weights was written."""

    exit_code = 3


def output_head(model: Any) -> Any:
    """The module that turns hidden states into vocabulary logits, under any DDP/PEFT wrapping."""
    while hasattr(model, "module") and not hasattr(model, "get_output_embeddings"):
        model = model.module  # DistributedDataParallel and friends
    head = model.get_output_embeddings()
    if head is None:
        raise MedtuneError(f"{type(model).__name__} has no output embeddings: causal-LM training needs a "
                           f"model with a language-model head")
    return head


def _select_rows(module: Any, args: tuple, kwargs: dict) -> Any:
    keep = getattr(module, "_medtune_keep", None)
    if keep is None:
        return None
    if args:
        return (args[0][keep.to(args[0].device)], *args[1:]), kwargs
    name = next(iter(kwargs))  # a head called by keyword (input=...)
    return args, {**kwargs, name: kwargs[name][keep.to(kwargs[name].device)]}


def labelled_loss(model: Any, inputs: dict, num_items_in_batch: Any = None) -> Any:
    """Causal-LM cross-entropy with the LM head run only at positions whose next token has a label: the
    same value as the model's own loss, a fraction of the head's FLOPs and memory with answer-only loss.
    The model's body runs as usual (through every wrapper); a pre-hook on its output head keeps the
    labelled rows of the hidden states, so this holds on every transformers 5.x release (a boolean
    `logits_to_keep` is not understood by all of them). Sum over labelled tokens / num_items_in_batch
    when given (the Trainer's count over the accumulated batch), else the mean, as transformers does."""
    import torch.nn.functional as F

    labels = inputs["labels"]
    shifted = F.pad(labels, (0, 1), value=IGNORE)[..., 1:]
    keep = shifted != IGNORE
    head = output_head(model)
    if not getattr(head, "_medtune_hooked", False):
        head.register_forward_pre_hook(_select_rows, with_kwargs=True)  # once; inert unless a mask is set
        head._medtune_hooked = True
    head._medtune_keep = keep
    try:
        out = model(**{k: v for k, v in inputs.items() if k != "labels"})
    finally:
        head._medtune_keep = None
    logits = out.logits.float().reshape(-1, out.logits.shape[-1])
    target = shifted[keep].to(logits.device)
    if num_items_in_batch is None:
        return F.cross_entropy(logits, target, reduction="mean")
    total = F.cross_entropy(logits, target, reduction="sum")
    if hasattr(num_items_in_batch, "to"):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


class MedtuneTrainer(Trainer):
    """Trainer whose evaluation is multiple-choice accuracy with medtune's scorers."""

    def __init__(self, *args: Any, mt_eval_items: Sequence = (), mt_tokenizer: Any = None,
                 mt_template: str = "chat", mt_scorer: str = "letter",
                 mt_precision_hint: str = "", mt_lengths: Sequence[int] | None = None,
                 mt_letters: Sequence[int] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.mt_eval_items = list(mt_eval_items)
        self.mt_tokenizer = mt_tokenizer
        self.mt_template = mt_template
        self.mt_scorer = mt_scorer
        self.mt_precision_hint = mt_precision_hint
        self.mt_lengths = list(mt_lengths) if mt_lengths is not None else None
        self.mt_letters = list(mt_letters) if mt_letters is not None else None
        self.mt_head_on_labels = not self.args.use_liger_kernel  # Liger fuses the head with the loss itself
        self.add_callback(CheckpointGuard(self))

    # The Trainer has no public hook for the training sampler (TRL's trainers override this one too).

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        from medtune.train.sampling import LetterBalancedSampler, grouped_by_length

        grouped = grouped_by_length(self.args) and self.mt_lengths is not None
        if self.mt_letters is not None:
            # one optimizer step over all processes: each reads every world_size-th batch of this order
            step = self.args.train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
            return LetterBalancedSampler(self.mt_letters, step, lengths=self.mt_lengths if grouped else None)
        if grouped:
            from transformers.trainer_pt_utils import LengthGroupedSampler

            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=self.mt_lengths)
        return super()._get_train_sampler(train_dataset)

    def compute_loss(self, model: Any, inputs: dict, return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if "choice_mask" in inputs:
            import torch.nn.functional as F

            from medtune.eval.choice import choice_logits

            logits = choice_logits(model, inputs)  # padded options masked out of the softmax
            loss = F.cross_entropy(logits.float(), inputs["labels"])
            return (loss, {"logits": logits}) if return_outputs else loss
        if return_outputs or not self.mt_head_on_labels or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        if not self.model_accepts_loss_kwargs:
            num_items_in_batch = None  # the Trainer then divides a per-batch mean by the accumulation steps
        loss = labelled_loss(model, inputs, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # as Trainer.compute_loss scales a token-averaged loss
        return loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        loss = logs.get("loss")
        if isinstance(loss, float) and not math.isfinite(loss):
            step = self.state.global_step
            ckpt = last_complete_checkpoint(Path(self.args.output_dir), quarantine=False)
            where = (f"the last complete checkpoint, {ckpt}, is intact (continue with --resume after fixing "
                     f"the cause)" if ckpt else "no checkpoint had been written yet")
            raise NonFiniteLoss(f"step {step}: the loss is {loss}; training stopped before a checkpoint of "
                                f"these weights was written and {where}. {self.mt_precision_hint}")
        super().log(logs, *args, **kwargs)

    def evaluate(self, eval_dataset: Any = None, ignore_keys: Any = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        from medtune.eval.metrics import summarize
        from medtune.eval.choice import is_multiple_choice
        from medtune.eval.run import score_items
        from medtune.eval.scorers import scorer_for
        from medtune.eval.scoring import softmax

        model = self.model
        was_training = model.training
        model.eval()
        t0 = time.perf_counter()
        scores, _ = score_items(model, self.mt_tokenizer, self.mt_eval_items, self.mt_scorer, self.mt_template,
                                batch_size=SELECTION_BATCH, device=str(self.args.device))
        if was_training:
            model.train()
        name = scorer_for(self.mt_scorer, is_multiple_choice(model)).results[0]
        items = self.mt_eval_items
        r = summarize([it.answer_index for it in items], [softmax(s) for s in scores[name]],
                      [it.subject for it in items])
        lo, hi = r["ci95"]
        top = max(r.get("predicted_letters", {}).values(), default=0.0)  # a collapse onto one letter shows here
        metrics = {f"{metric_key_prefix}_accuracy": r["accuracy"], f"{metric_key_prefix}_ci95_low": lo,
                   f"{metric_key_prefix}_ci95_high": hi, f"{metric_key_prefix}_top_letter_share": top,
                   f"{metric_key_prefix}_seconds": time.perf_counter() - t0}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def resume_checkpoint(trainer: Any, folder: Path) -> Path | None:
    """The checkpoint every process resumes from: the first process sets interrupted ones aside, then,
    after a barrier, all read the newest complete one (no process renames while another reads)."""
    if trainer.is_world_process_zero():
        last_complete_checkpoint(folder)
    trainer.accelerator.wait_for_everyone()
    return last_complete_checkpoint(folder, quarantine=False)


def last_complete_checkpoint(folder: Path, quarantine: bool = True) -> Path | None:
    """The newest checkpoint with its completion marker; interrupted ones are renamed aside."""
    if not folder.is_dir():
        return None
    best: tuple[int, Path] | None = None
    for p in folder.iterdir():
        m = _CKPT.match(p.name)
        if not m or not p.is_dir():
            continue
        if not (p / COMPLETE).is_file():
            if quarantine:
                p.rename(p.with_name(f"incomplete-{p.name}-{int(time.time())}"))
            continue
        if best is None or int(m.group(1)) > best[0]:
            best = (int(m.group(1)), p)
    return best[1] if best else None


class CheckpointGuard(TrainerCallback):
    """Checkpoints through the Trainer's public callbacks: a step that saves or evaluates logs its loss
    first (the log's NaN/inf guard stops a bad loss before it is saved; otherwise the loss reaches the
    host only when it is logged anyway), and a saved checkpoint gets its completion marker from the first
    process alone, after every process has written its part (rng state, shards)."""

    def __init__(self, trainer: Any):
        self.trainer = trainer

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
        if control.should_save or control.should_evaluate:
            control.should_log = True
        return control

    on_epoch_end = on_step_end

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.trainer.accelerator.wait_for_everyone()
        if args.should_save and folder.is_dir():  # last: without the marker a checkpoint counts as interrupted
            atomic_write_json(folder / COMPLETE, {"step": state.global_step, "time": time.time()})


class TerminalLog(TrainerCallback):
    """One short line per log event (loss, learning rate, accuracy), for logs and non-TTY runs."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
        if not logs or not state.is_world_process_zero:
            return
        keys = ("loss", "learning_rate", "grad_norm", "eval_accuracy", "eval_top_letter_share", "train_loss")
        parts = [f"{k}={logs[k]:.4g}" for k in keys if isinstance(logs.get(k), (int, float))]
        if parts:
            print(f"step {state.global_step}/{state.max_steps}: " + " ".join(parts), flush=True)


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step, end to end (data, forward, backward, optimizer), synchronised
    with the device at each step's end (for `bench train`)."""

    def __init__(self, device: str):
        self.device = device
        self.times: list[float] = []
        self._last = 0.0

    def _now(self) -> float:
        import torch

        if self.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._last = self._now()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        now = self._now()
        self.times.append(now - self._last)
        self._last = now
