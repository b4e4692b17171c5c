"""Calibrated confidence and abstention: a temperature fitted on questions the report never sees (a training
run's selection split, or `--calibrate-on FILE`), ECE and Brier before and after, the risk-coverage curve,
and the confidence below which an answer is withheld (`abstain: true` in ask, the app and the API)."""

from __future__ import annotations

import math
from typing import Sequence

COVERAGES = (0.5, 0.8, 0.9)
CURVE_POINTS = 50


def scaled(scores: Sequence[float], temperature: float) -> list[float]:
    """softmax(scores / temperature)."""
    top = max(scores)
    exps = [math.exp((s - top) / temperature) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def nll(scores: Sequence[Sequence[float]], gold: Sequence[int], temperature: float) -> float:
    """Mean negative log-likelihood of the gold options at this temperature."""
    out = 0.0
    for s, g in zip(scores, gold):
        top = max(s)
        out += math.log(sum(math.exp((v - top) / temperature) for v in s)) - (s[g] - top) / temperature
    return out / len(gold)


def fit_temperature(scores: Sequence[Sequence[float]], gold: Sequence[int], lo: float = 0.05,
                    hi: float = 50.0, steps: int = 60) -> float:
    """The temperature minimising the gold options' NLL (golden-section search over log T; NLL is convex
    in 1/T)."""
    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(scores, gold, math.exp(c)), nll(scores, gold, math.exp(d))
    for _ in range(steps):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(scores, gold, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(scores, gold, math.exp(d))
    return math.exp((a + b) / 2)


def brier(probs: Sequence[Sequence[float]], gold: Sequence[int]) -> float:
    """Mean over questions of the squared error of the option probabilities against the one-hot gold."""
    return sum(sum((p - (j == g)) ** 2 for j, p in enumerate(ps)) for ps, g in zip(probs, gold)) / len(gold)


def calibration_figures(scores: Sequence[Sequence[float]], gold: Sequence[int], temperature: float) -> dict:
    """ECE and Brier at temperature 1 and at the given one."""
    from medtune.eval.metrics import expected_calibration_error

    out = {}
    for key, t in (("before", 1.0), ("after", temperature)):
        probs = [scaled(s, t) for s in scores]
        best = [max(range(len(p)), key=p.__getitem__) for p in probs]
        ece, _ = expected_calibration_error([p[b] for p, b in zip(probs, best)],
                                            [b == g for b, g in zip(best, gold)])
        out[key] = {"ece": ece, "brier": brier(probs, gold), "nll": nll(scores, gold, t)}
    return out


def risk_coverage(confidence: Sequence[float], correct: Sequence[bool]) -> dict:
    """Answering only the most confident questions: the risk-coverage curve (at most CURVE_POINTS points),
    its area (AURC: mean risk over every coverage), and the accuracy at 50/80/90% coverage."""
    n = len(confidence)
    if n == 0:
        return {"aurc": None, "curve": [], "accuracy_at": {}}
    ranked = sorted(range(n), key=lambda i: -confidence[i])
    right, risks = 0, []
    for k, i in enumerate(ranked, 1):
        right += bool(correct[i])
        risks.append(1 - right / k)
    step = max(1, n // CURVE_POINTS)
    curve = [{"coverage": k / n, "risk": risks[k - 1], "confidence": confidence[ranked[k - 1]]}
             for k in list(range(step, n, step)) + [n]]
    at = {f"{c:.0%}": 1 - risks[max(1, math.ceil(c * n)) - 1] for c in COVERAGES}
    return {"aurc": sum(risks) / n, "curve": curve, "accuracy_at": at}


def threshold_for(confidence: Sequence[float], correct: Sequence[bool], target: float) -> dict:
    """The lowest confidence such that the questions at or above it reach the target accuracy (the widest
    coverage that does), or None when no coverage reaches it."""
    ranked = sorted(range(len(confidence)), key=lambda i: -confidence[i])
    right, best = 0, None
    for k, i in enumerate(ranked, 1):
        right += bool(correct[i])
        nxt = ranked[k] if k < len(ranked) else None
        tie = nxt is not None and confidence[nxt] == confidence[i]
        if not tie and right / k >= target:
            best = (confidence[i], k / len(ranked), right / k)
    if best is None:
        return {"target_accuracy": target, "threshold": None, "coverage": 0.0, "accuracy": None}
    return {"target_accuracy": target, "threshold": best[0], "coverage": best[1], "accuracy": best[2]}


def calibrate(cal_scores: Sequence[Sequence[float]], cal_gold: Sequence[int], target: float, source: dict) -> dict:
    """The temperature and the abstention threshold fitted on the calibration questions, with its figures."""
    t = fit_temperature(cal_scores, cal_gold)
    probs = [scaled(s, t) for s in cal_scores]
    conf = [max(p) for p in probs]
    correct = [max(range(len(p)), key=p.__getitem__) == g for p, g in zip(probs, cal_gold)]
    return {"temperature": t, "fitted_on": {**source, "n": len(cal_gold)},
            "calibration_set": calibration_figures(cal_scores, cal_gold, t),
            "abstain": threshold_for(conf, correct, target)}


def verdict(probabilities: Sequence[float], temperature: float | None, abstain_below: float | None) -> dict:
    """What `ask`, the app and the API add to an answer: the calibrated confidence of the chosen option and
    whether to withhold it (with the reason)."""
    logs = [math.log(max(p, 1e-300)) for p in probabilities]
    conf = max(scaled(logs, temperature or 1.0))
    abstain = abstain_below is not None and conf < abstain_below
    reason = (f"confidence {conf:.1%} is below the threshold {abstain_below:.1%}" if abstain else None)
    return {"confidence": conf, "abstain": abstain, "abstain_reason": reason, "temperature": temperature}


def policy(final_metrics: dict | None, abstain_below: float | None = None) -> tuple[float | None, float | None]:
    """(temperature, threshold) for answering: a run's fitted calibration, the threshold overridden when given."""
    cal = (final_metrics or {}).get("confidence") or {}
    threshold = abstain_below if abstain_below is not None else (cal.get("abstain") or {}).get("threshold")
    return cal.get("temperature"), threshold
