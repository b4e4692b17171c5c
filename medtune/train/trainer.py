"""The Hugging Face Trainer, with what medtune adds: accuracy as the eval metric, a NaN/inf guard,
checkpoints that count only once complete, and a curve plot."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Sequence

from transformers import Trainer, TrainerCallback

from medtune.errors import MedtuneError
from medtune.io import atomic_write_json

COMPLETE = "medtune-complete.json"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


class NonFiniteLoss(MedtuneError):
    """The loss became NaN or inf; the run stopped before the bad step was applied."""

    exit_code = 3


class MedtuneTrainer(Trainer):
    """Trainer whose evaluation is multiple-choice accuracy with medtune's scorers."""

    def __init__(self, *args: Any, mt_eval_items: Sequence = (), mt_tokenizer: Any = None,
                 mt_template: str = "chat", mt_scorer: str = "letter", mt_eval_batch: int = 8,
                 mt_precision_hint: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.mt_eval_items = list(mt_eval_items)
        self.mt_tokenizer = mt_tokenizer
        self.mt_template = mt_template
        self.mt_scorer = mt_scorer
        self.mt_eval_batch = mt_eval_batch
        self.mt_precision_hint = mt_precision_hint

    def compute_loss(self, model: Any, inputs: dict, return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if "choice_mask" not in inputs:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        import torch.nn.functional as F

        from medtune.train.multiple_choice import choice_logits

        logits = choice_logits(model, inputs)  # padded options masked out of the softmax
        loss = F.cross_entropy(logits.float(), inputs["labels"])
        return (loss, {"logits": logits}) if return_outputs else loss

    def training_step(self, model: Any, inputs: dict, num_items_in_batch: Any = None) -> Any:
        import torch

        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss.detach()).all():
            step = self.state.global_step + 1
            ckpt = last_complete_checkpoint(Path(self.args.output_dir), quarantine=False)
            where = (f"the last complete checkpoint, {ckpt}, is intact (continue with --resume after fixing "
                     f"the cause)" if ckpt else "no checkpoint had been written yet")
            raise NonFiniteLoss(f"step {step}: the loss is {float(loss.detach().float().mean())}; training "
                                f"stopped before this step was applied and {where}. {self.mt_precision_hint}")
        return loss

    def evaluate(self, eval_dataset: Any = None, ignore_keys: Any = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        from medtune.eval.metrics import summarize
        from medtune.eval.run import RESULTS, score_items
        from medtune.eval.scoring import softmax

        model = self.model
        was_training = model.training
        model.eval()
        t0 = time.perf_counter()
        scores, _ = score_items(model, self.mt_tokenizer, self.mt_eval_items, self.mt_scorer, self.mt_template,
                                batch_size=self.mt_eval_batch, device=str(self.args.device))
        if was_training:
            model.train()
        name = "choice" if "choice" in scores else RESULTS[self.mt_scorer][0]  # encoders report "choice"
        items = self.mt_eval_items
        r = summarize([it.answer_index for it in items], [softmax(s) for s in scores[name]],
                      [it.subject for it in items])
        lo, hi = r["ci95"]
        metrics = {f"{metric_key_prefix}_accuracy": r["accuracy"], f"{metric_key_prefix}_ci95_low": lo,
                   f"{metric_key_prefix}_ci95_high": hi, f"{metric_key_prefix}_seconds": time.perf_counter() - t0}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        if folder.is_dir():  # written last: a checkpoint without it was interrupted
            atomic_write_json(folder / COMPLETE, {"step": self.state.global_step, "time": time.time()})


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


class TerminalLog(TrainerCallback):
    """One short line per log event (loss, learning rate, accuracy), for logs and non-TTY runs."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
        if not logs or not state.is_world_process_zero:
            return
        keys = ("loss", "learning_rate", "grad_norm", "eval_accuracy", "train_loss")
        parts = [f"{k}={logs[k]:.4g}" for k in keys if isinstance(logs.get(k), (int, float))]
        if parts:
            print(f"step {state.global_step}/{state.max_steps}: " + " ".join(parts), flush=True)


def plot_curves(log_history: list[dict], path: Path, baseline_acc: float | None = None,
                final_acc: float | None = None, prior: tuple[str, float] | None = None) -> Path | None:
    """Training loss and eval accuracy against steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    acc = [(h["step"], h["eval_accuracy"]) for h in log_history if "eval_accuracy" in h]
    if not loss and not acc:
        return None
    fig, ax1 = plt.subplots(figsize=(7, 4), dpi=110)
    if loss:
        ax1.plot(*zip(*loss), color="tab:blue", label="training loss")
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("training loss", color="tab:blue")
    ax2 = ax1.twinx()
    if acc:
        ax2.plot(*zip(*acc), "o-", color="tab:red", label="eval accuracy")
    if baseline_acc is not None:
        ax2.axhline(baseline_acc, color="tab:gray", ls="--", label=f"baseline {baseline_acc:.3f}")
    if final_acc is not None:
        ax2.axhline(final_acc, color="tab:red", ls=":", label=f"final {final_acc:.3f}")
    if prior is not None:
        ax2.axhline(prior[1], color="black", ls="-.", lw=0.8, label=f"always {prior[0]!r} {prior[1]:.3f}")
    ax2.set_ylabel("eval accuracy", color="tab:red")
    handles = ax1.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax1.legend(handles, [h.get_label() for h in handles], loc="best", fontsize=8)
    ax1.set_title("medtune training")
    fig.tight_layout()
    from medtune.io import atomic_savefig

    return atomic_savefig(fig, path)


def read_json(path: Path) -> Any:
    """JSON from a file, or None when it is missing."""
    return json.loads(path.read_text("utf-8")) if path.is_file() else None
