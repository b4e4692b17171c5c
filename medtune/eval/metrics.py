"""Metrics over predictions: accuracy with a CI, macro-F1, per subject, calibration, baselines, McNemar."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Sequence

from medtune.data.schema import LETTERS
from medtune.eval.bias import selection_bias


def wilson_ci(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for k successes out of n."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def macro_f1(gold: Sequence[int], pred: Sequence[int | None]) -> float:
    """Mean F1 over the answer letters that occur as gold or prediction (None: no answer, a miss)."""
    labels = sorted(set(gold) | {p for p in pred if p is not None})
    f1s = []
    for lab in labels:
        tp = sum(1 for g, p in zip(gold, pred) if g == lab and p == lab)
        fp = sum(1 for g, p in zip(gold, pred) if g != lab and p == lab)
        fn = sum(1 for g, p in zip(gold, pred) if g == lab and p != lab)
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(f1s) / len(f1s) if f1s else 0.0


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool],
                               bins: int = 10) -> tuple[float, list[dict]]:
    """ECE over equal-width confidence bins, and the bins (for a reliability diagram)."""
    table = []
    n = len(confidence)
    ece = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(confidence) if (lo < c <= hi) or (b == 0 and c == 0)]
        if not members:
            table.append({"lo": lo, "hi": hi, "n": 0, "accuracy": None, "confidence": None})
            continue
        acc = sum(correct[i] for i in members) / len(members)
        conf = sum(confidence[i] for i in members) / len(members)
        ece += len(members) / n * abs(acc - conf)
        table.append({"lo": lo, "hi": hi, "n": len(members), "accuracy": acc, "confidence": conf})
    return ece, table


def summarize(gold: Sequence[int], probs: Sequence[Sequence[float]], subjects: Sequence[str | None],
              predicted: Sequence[int | None] | None = None) -> dict:
    """All metrics for one scorer's option probabilities against the gold indices. `predicted`, when
    given, overrides the argmax; a None there is an unanswered question: wrong, with no confidence."""
    n = len(gold)
    pred = list(predicted) if predicted is not None else [max(range(len(p)), key=lambda i: p[i]) for p in probs]
    correct = [k is not None and g == k for g, k in zip(gold, pred)]
    k = sum(correct)
    lo, hi = wilson_ci(k, n)
    ece, bins = expected_calibration_error([0.0 if j is None else p[j] for p, j in zip(probs, pred)], correct)
    width = max(len(p) for p in probs)
    confusion = [[0] * width for _ in range(width)]
    for g, j in zip(gold, pred):
        if j is not None:
            confusion[g][j] += 1
    by_subject: dict[str, list[bool]] = defaultdict(list)
    for s, c in zip(subjects, correct):
        by_subject[s or "(none)"].append(c)
    per_subject = {}
    for s in sorted(by_subject):
        cs = by_subject[s]
        slo, shi = wilson_ci(sum(cs), len(cs))
        per_subject[s] = {"n": len(cs), "accuracy": sum(cs) / len(cs), "ci95": [slo, shi]}
    pred_counts = Counter(pred)
    letters = {LETTERS[i]: pred_counts.get(i, 0) / n for i in range(width)}
    unanswered = pred_counts.get(None, 0)
    if unanswered:
        letters["none"] = unanswered / n
    return {
        "n": n, "correct": k, "accuracy": k / n if n else 0.0, "ci95": [lo, hi],
        "macro_f1": macro_f1(gold, pred), "ece": ece, "reliability": bins,
        "per_subject": per_subject,
        "confusion": {"labels": list(LETTERS[:width]), "rows_gold_cols_pred": confusion},
        "predicted_letters": letters, "unanswered": unanswered, "bias": selection_bias(gold, pred, width),
    }


def baselines(gold: Sequence[int], n_options: Sequence[int]) -> dict:
    """Chance (mean 1/options) and always answering the most frequent gold letter of this set."""
    n = len(gold)
    counts = Counter(gold)
    top, top_n = max(sorted(counts.items()), key=lambda kv: kv[1])
    lo, hi = wilson_ci(top_n, n)
    return {
        "chance": sum(1 / k for k in n_options) / n,
        "most_frequent_letter": {"letter": LETTERS[top], "accuracy": top_n / n, "ci95": [lo, hi]},
        "gold_letters": {LETTERS[i]: counts.get(i, 0) / n for i in sorted(counts)},
    }


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict:
    """Exact McNemar test on paired outcomes: b = A right & B wrong, c = A wrong & B right."""
    b = sum(1 for x, y in zip(a_correct, b_correct) if x and not y)
    c = sum(1 for x, y in zip(a_correct, b_correct) if y and not x)
    m = b + c
    if m == 0:
        p = 1.0
    else:
        tail = sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2 ** m
        p = min(1.0, 2 * tail)
    return {"a_only": b, "b_only": c, "p_value": p, "test": "exact two-sided McNemar (binomial)"}
