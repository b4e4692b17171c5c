"""Selection bias (a preference for letters, whatever they show) and its label-free correction, PriDe
(Zheng et al., "Large Language Models Are Not Robust Multiple Choice Selectors", ICLR 2024).

PriDe: on a small seeded sample of the questions, each scored under every cyclic rotation, the prior over
shown positions of one question is softmax(mean over rotations of log P(position)); the prior is the mean
of those over the sample (per number of options). Every other question's probabilities are divided by it
and renormalised, from its one ordinary pass.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from typing import Sequence

from medtune.data.schema import LETTERS

DEBIAS_METHODS = ("pride",)


def selection_bias(gold: Sequence[int], pred: Sequence[int | None], width: int) -> dict:
    """Per-letter recall, its standard deviation over the gold letters present (RStd), and the KL divergence
    of the predicted-letter distribution from the gold one (Laplace-smoothed counts, nats)."""
    recall = {}
    for letter in range(width):
        rows = [p for g, p in zip(gold, pred) if g == letter]
        if rows:
            recall[LETTERS[letter]] = sum(p == letter for p in rows) / len(rows)
    values = list(recall.values())
    mean = sum(values) / len(values) if values else 0.0
    rstd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) if values else 0.0
    gc, pc = Counter(gold), Counter(p for p in pred if p is not None)
    g_tot, p_tot = sum(gc.values()) + width, sum(pc.values()) + width
    kl = sum((pc[i] + 1) / p_tot * math.log(((pc[i] + 1) / p_tot) / ((gc[i] + 1) / g_tot)) for i in range(width))
    return {"rstd": rstd, "kl_pred_gold": kl, "recall": recall}


def prior_sample(ids: Sequence[str], fraction: float, seed: int) -> list[int]:
    """The indices of the questions that estimate the prior: the `fraction` (at least one, never all) whose
    seeded hash of the id is smallest, so the sample depends on the ids and the seed, not the file order."""
    k = min(len(ids) - 1, max(1, round(fraction * len(ids))))
    if k < 1:
        return []
    ranked = sorted(range(len(ids)), key=lambda i: hashlib.sha256(f"{seed}:{ids[i]}".encode()).hexdigest())
    return sorted(ranked[:k])


def question_prior(rotated_probs: Sequence[Sequence[float]]) -> list[float]:
    """One question's prior over shown positions from its probabilities under every cyclic rotation:
    softmax of the mean log-probability per position."""
    logs = [sum(math.log(max(p[j], 1e-300)) for p in rotated_probs) / len(rotated_probs)
            for j in range(len(rotated_probs[0]))]
    top = max(logs)
    exps = [math.exp(v - top) for v in logs]
    return [e / sum(exps) for e in exps]


def estimate_prior(samples: Sequence[Sequence[Sequence[float]]]) -> dict[int, list[float]]:
    """Per number of options, the mean of the sampled questions' priors (each given as its probabilities
    under every cyclic rotation, shown positions)."""
    by_n: dict[int, list[list[float]]] = {}
    for rotated in samples:
        by_n.setdefault(len(rotated[0]), []).append(question_prior(rotated))
    return {n: [sum(col) / len(ps) for col in zip(*ps)] for n, ps in sorted(by_n.items())}


def debias(probs: Sequence[float], prior: Sequence[float]) -> list[float]:
    """Shown-position probabilities with the prior divided out, renormalised."""
    raw = [p / max(q, 1e-300) for p, q in zip(probs, prior)]
    total = sum(raw)
    return [r / total for r in raw]
