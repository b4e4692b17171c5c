"""GRPO rewards for multiple-choice answers, read by the generative scorer's extractor.

`AnswerReward`: 1.0 when the completion commits to the right option, 0.0 otherwise. The verdict is
`medtune.eval.extract.extract_answer`, the same rules as the `generate` scorer's, so what training
rewards is exactly what the before/after evaluation counts: the last answer statement wins, and a
completion that hedges ("the answer is A or B") or lists every option ("A B C D") commits to nothing
and gets 0. Unparseable completions get 0 and are counted.

`FormatReward`: 1.0 when the reply (after any reasoning) has the answer line the prompt asks for
("Answer: X" naming one option), whichever letter it names; its weight (`grpo.format_reward_weight`)
stays small so that a right answer always outweighs a well-formed wrong one.

Both follow TRL's reward-function contract, `f(prompts, completions, **columns) -> list[float]`,
with the dataset's `answer_index` and `options` columns passed as keyword arguments. `step_log` and
`plot_grpo` turn the Trainer's log into the per-step reward figures of a run and their plot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from medtune.eval.extract import Extraction, extract_answer

ANSWER_LINE = "answer-line"  # the extraction rule of a final "Answer: X" line


def _text(completion: Any) -> str:
    """A completion as text: TRL passes strings for text prompts and message lists for chat ones."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content") or "" for m in completion if isinstance(m, dict))


def read_completion(prompt: Any, completion: Any, options: Sequence[str]) -> Extraction:
    """The extractor's verdict on one completion; a prompt that opens the think block (DeepSeek-R1 style
    templates) means the completion continues inside it."""
    text = _text(completion)
    if isinstance(prompt, str) and prompt.rstrip().endswith("<think>") and "<think>" not in text:
        text = "<think>" + text
    return extract_answer(text, options)


@dataclass
class RewardTally:
    """Running counts over every completion scored: how many, right, unparseable."""

    completions: int = 0
    correct: int = 0
    unparseable: int = 0
    how: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        n = self.completions
        return {"completions": n, "correct": self.correct, "unparseable": self.unparseable,
                "accuracy": self.correct / n if n else 0.0, "unparseable_rate": self.unparseable / n if n else 0.0,
                "extraction": dict(sorted(self.how.items()))}


class AnswerReward:
    """1.0 for the right option, 0.0 for a wrong or unreadable one; logs accuracy and the unparseable rate."""

    __name__ = "answer"  # TRL names the logged reward `rewards/answer/mean`

    def __init__(self) -> None:
        self.tally = RewardTally()

    def __call__(self, prompts: list, completions: list, answer_index: list[int], options: list[list[str]],
                 log_metric: Callable[[str, float], None] | None = None, **_: Any) -> list[float]:
        got = [read_completion(p, c, o) for p, c, o in zip(prompts, completions, options)]
        rewards = [1.0 if g.index is not None and g.index == gold else 0.0 for g, gold in zip(got, answer_index)]
        unparseable = sum(g.index is None for g in got)
        t = self.tally
        t.completions += len(got)
        t.correct += int(sum(rewards))
        t.unparseable += unparseable
        for g in got:
            t.how[g.how] = t.how.get(g.how, 0) + 1
        if log_metric is not None and got:
            log_metric("answer/accuracy", sum(rewards) / len(got))
            log_metric("answer/unparseable_rate", unparseable / len(got))
        return rewards


class FormatReward:
    """1.0 when the reply ends its answer with the requested "Answer: X" line naming one option, else 0.0."""

    __name__ = "format"

    def __call__(self, prompts: list, completions: list, options: list[list[str]], **_: Any) -> list[float]:
        return [1.0 if (g := read_completion(p, c, o)).index is not None and g.how == ANSWER_LINE else 0.0
                for p, c, o in zip(prompts, completions, options)]


def reward_functions(format_weight: float) -> tuple[list[Any], list[float]]:
    """The reward functions and their weights: the answer reward (weight 1), plus the format reward
    when its weight is not 0."""
    funcs: list[Any] = [AnswerReward()]
    weights = [1.0]
    if format_weight:
        funcs.append(FormatReward())
        weights.append(float(format_weight))
    return funcs, weights


def step_log(history: list[dict]) -> list[dict]:
    """Per logging step: reward mean, accuracy on the training prompts, unparseable rate, completion length,
    the fraction of groups whose rewards are all equal (they teach nothing), KL and loss."""
    keys = {"reward": "reward", "answer/accuracy": "accuracy", "answer/unparseable_rate": "unparseable_rate",
            "completions/mean_length": "mean_length", "frac_reward_zero_std": "zero_std_fraction", "kl": "kl",
            "loss": "loss"}
    return [{"step": h["step"], **{new: h[old] for old, new in keys.items() if old in h}}
            for h in history if "reward" in h and "step" in h]


def plot_grpo(steps: list[dict], path: Path, before: float | None, after: float | None) -> Path | None:
    """Reward mean, training-prompt accuracy and unparseable rate (left), completion length (right), with
    the held-out accuracy before and after as lines, as a PNG."""
    if not steps:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for key, style in (("reward", "o-"), ("accuracy", "s-"), ("unparseable_rate", "x--")):
        pts = [(s["step"], s[key]) for s in steps if key in s]
        if pts:
            label = key.replace("_", " ") + (" (training prompts)" if key == "accuracy" else "")
            ax.plot(*zip(*pts), style, label=label)
    for value, style, name in ((before, "--", "held-out before"), (after, ":", "held-out after")):
        if value is not None:
            ax.axhline(value, color="tab:gray", ls=style, label=f"{name} {value:.3f}")
    ax.set_xlabel("optimizer step")
    ax.set_ylim(-0.02, max(1.02, max(s.get("reward", 0) for s in steps) + 0.02))
    lengths = [(s["step"], s["mean_length"]) for s in steps if "mean_length" in s]
    if lengths:
        ax2 = ax.twinx()
        ax2.plot(*zip(*lengths), color="tab:purple", alpha=0.5, label="completion length")
        ax2.set_ylabel("mean completion length (tokens)", color="tab:purple")
    ax.legend(loc="best", fontsize=8)
    ax.set_title("medtune GRPO")
    fig.tight_layout()
    from medtune.io import atomic_savefig

    return atomic_savefig(fig, path)
