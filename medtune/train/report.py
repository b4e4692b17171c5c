"""What a training run shows besides its metrics: the curve plot, TensorBoard events, the letter
distributions. matplotlib and tensorboard are optional: without them the run says so in one line and
goes on."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

LETTERS = "ABCDEFGHIJ"


def notice(module: str, what: str) -> None:
    """One line on stderr: an optional package is missing, so one output is skipped."""
    print(f"medtune: {module} is not installed, so {what} is skipped (pip install {module})", file=sys.stderr)


def tensorboard_callback(folder: Path) -> Any:
    """A TensorBoard callback writing into `folder`, or None (with a notice) without tensorboard."""
    if importlib.util.find_spec("tensorboard") is None:
        notice("tensorboard", f"the TensorBoard log in {folder}")
        return None
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(SummaryWriter(str(folder)))


def plot_curves(log_history: list[dict], path: Path, baseline_acc: float | None = None,
                final_acc: float | None = None, prior: tuple[str, float] | None = None) -> Path | None:
    """Training loss and eval accuracy against steps, as a PNG (None without matplotlib or points)."""
    loss = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    acc = [(h["step"], h["eval_accuracy"]) for h in log_history if "eval_accuracy" in h]
    if not loss and not acc:
        return None
    if importlib.util.find_spec("matplotlib") is None:
        notice("matplotlib", f"the curve plot {path.name}")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax1 = plt.subplots(figsize=(7, 4), dpi=110)
    if loss:
        ax1.plot(*zip(*loss), color="tab:blue", label="training loss")
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("training loss", color="tab:blue")
    ax2 = ax1.twinx()
    if acc:
        ax2.plot(*zip(*acc), "o-", color="tab:red", label="selection accuracy")
    if baseline_acc is not None:
        ax2.axhline(baseline_acc, color="tab:gray", ls="--", label=f"baseline {baseline_acc:.3f}")
    if final_acc is not None:
        ax2.axhline(final_acc, color="tab:red", ls=":", label=f"final {final_acc:.3f}")
    if prior is not None:
        ax2.axhline(prior[1], color="black", ls="-.", lw=0.8, label=f"always {prior[0]!r} {prior[1]:.3f}")
    ax2.set_ylabel("accuracy", color="tab:red")
    handles = ax1.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax1.legend(handles, [h.get_label() for h in handles], loc="best", fontsize=8)
    ax1.set_title("medtune training")
    fig.tight_layout()
    from medtune.io import atomic_savefig

    return atomic_savefig(fig, path)


def share(letters: Sequence[str | None]) -> dict[str, float]:
    """Fraction of answers per letter (None: unparsed answers, counted under '?'), in letter order."""
    counts = Counter(x if x is not None else "?" for x in letters)
    n = max(1, len(letters))
    return {k: counts[k] / n for k in sorted(counts, key=lambda k: (k == "?", k))}


def letter_distributions(items: Sequence[Any], baseline: dict | None, final: dict) -> dict[str, dict[str, float]]:
    """The gold letters' distribution beside the predicted ones before and after training."""
    out = {"gold": share([LETTERS[it.answer_index] for it in items])}
    for name, metrics in (("before", baseline), ("after", final)):
        if metrics is not None:
            r = metrics["results"][metrics["primary"]]
            out[name] = dict(r["predicted_letters"])
    return out


def format_distributions(dist: dict[str, dict[str, float]]) -> str:
    """One line: 'letters  gold A 32% B 25% ... · before ... · after ...'."""
    parts = [f"{name} " + " ".join(f"{k} {v:.0%}" for k, v in d.items()) for name, d in dist.items()]
    return "letters: " + " · ".join(parts)
