"""Option-order robustness (`medtune eval --permute cyclic|N`): each question scored again with its options
reordered, every order's scores mapped back to the original options, and what the orders agree on.

An order is a tuple `order` where position `pos` shows original option `order[pos]`. The first order of
every question is the original one, so the plain evaluation is that column, unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

from medtune.data.schema import MCQItem
from medtune.errors import MedtuneError
from medtune.eval.output import ScorerOutput

Order = tuple[int, ...]


def parse_permute(spec: str | int | None) -> str | int | None:
    """'cyclic', a number of orders (at least 2), or None; a one-line error otherwise."""
    if spec is None or spec == "cyclic":
        return spec
    try:
        n = int(spec)
    except (TypeError, ValueError):
        raise MedtuneError(f"expected cyclic or a number of orders, got {spec!r}", field="--permute") from None
    if n < 2:
        raise MedtuneError(f"a number of orders is at least 2 (the original and one more), got {n}",
                           field="--permute")
    return n


def rotation(n: int, r: int) -> Order:
    """The r-th cyclic rotation of n options: position j shows option (j + r) mod n."""
    return tuple((j + r) % n for j in range(n))


def orders_for(item: MCQItem, spec: str | int, seed: int) -> list[Order]:
    """The orders one question is scored in, the original first: n rotations (cyclic), or the original
    and N-1 distinct random orders seeded by the seed and the question's id (at most n! in all)."""
    n = len(item.options)
    if spec == "cyclic":
        return [rotation(n, r) for r in range(n)]
    want = min(int(spec), math.factorial(n))
    rng = random.Random(hashlib.sha256(f"{seed}:{item.id}".encode()).hexdigest())
    out = [tuple(range(n))]
    while len(out) < want:
        p = tuple(rng.sample(range(n), n))
        if p not in out:
            out.append(p)
    return out


def reorder(item: MCQItem, order: Order) -> MCQItem:
    """The question with its options shown in `order` (the gold index follows its option)."""
    return dataclasses.replace(item, options=tuple(item.options[o] for o in order),
                               answer_index=order.index(item.answer_index))


def map_back(values: Sequence[float], order: Order) -> list[float]:
    """Per-position values of a reordered question as values per original option."""
    out = [0.0] * len(order)
    for pos, o in enumerate(order):
        out[o] = values[pos]
    return out


def choices(out: ScorerOutput, name: str) -> list[int | None]:
    """The option each question was answered with: the scorer's own choice, else the highest score."""
    if out.predicted and name in out.predicted:
        return list(out.predicted[name])
    return [max(range(len(s)), key=s.__getitem__) for s in out.scores[name]]


@dataclass
class Ordered:
    """Per question, its orders; per result name, per question, per order: the scores by original option
    (`scores`), the displayed ones (`shown`) and the original option chosen (`predicted`)."""

    orders: list[list[Order]]
    scores: dict[str, list[list[list[float]]]]
    shown: dict[str, list[list[list[float]]]]
    predicted: dict[str, list[list[int | None]]]


def score_orders(score: Callable[[list[MCQItem]], ScorerOutput], items: Sequence[MCQItem],
                 orders: list[list[Order]], plain: ScorerOutput) -> Ordered:
    """Score every question in every order after the first (one call of `score` over all of them) and map
    each back; the first order's results are `plain`, the ordinary evaluation, as it is."""
    extra = [(q, k) for q, os in enumerate(orders) for k in range(1, len(os))]
    more = score([reorder(items[q], orders[q][k]) for q, k in extra]) if extra else None
    names = list(plain.scores)
    scores = {n: [[list(s)] for s in plain.scores[n]] for n in names}
    shown = {n: [[list(s)] for s in plain.scores[n]] for n in names}
    predicted = {n: [[p] for p in choices(plain, n)] for n in names}
    for n in names:
        more_pred = choices(more, n) if more else []
        for j, (q, k) in enumerate(extra):
            order = orders[q][k]
            s = more.scores[n][j]  # type: ignore[union-attr]
            scores[n][q].append(map_back(s, order))
            shown[n][q].append(list(s))
            p = more_pred[j]
            predicted[n][q].append(None if p is None else order[p])
    return Ordered(orders, scores, shown, predicted)


def order_metrics(gold: Sequence[int], ordered: Ordered, name: str) -> dict:
    """Accuracy per order and its spread, the permutation-averaged prediction's accuracy, correct under every
    order, consistency across orders (the same answer read in every order), and the selection bias pooled over
    all orders' shown letters."""
    from medtune.eval.bias import selection_bias
    from medtune.eval.metrics import wilson_ci
    from medtune.eval.scoring import softmax

    preds, n = ordered.predicted[name], len(gold)
    per = []
    for r in range(max(len(p) for p in preds)):
        qs = [q for q in range(n) if len(preds[q]) > r]
        k = sum(preds[q][r] == gold[q] for q in qs)
        per.append({"order": r, "n": len(qs), "accuracy": k / len(qs),
                    "unanswered": sum(preds[q][r] is None for q in qs)})  # generate: no answer read
    accs = [p["accuracy"] for p in per]
    mean = sum(accs) / len(accs)
    averaged: list[int | None] = []
    for q in range(n):  # an order with no answer read (generate: unparseable) does not vote; none at all: None
        probs = [softmax(s) for s, p in zip(ordered.scores[name][q], preds[q]) if p is not None]
        avg = [sum(col) / len(probs) for col in zip(*probs)]
        averaged.append(max(range(len(avg)), key=avg.__getitem__) if avg else None)
    k_avg = sum(a == g for a, g in zip(averaged, gold))
    shown_gold, shown_pred, width = [], [], max(len(o[0]) for o in ordered.orders)
    for q in range(n):
        for order, p in zip(ordered.orders[q], preds[q]):
            shown_gold.append(order.index(gold[q]))
            shown_pred.append(None if p is None else order.index(p))
    return {
        "orders": max(len(p) for p in preds), "per_order": per,
        "spread": max(accs) - min(accs), "std": math.sqrt(sum((a - mean) ** 2 for a in accs) / len(accs)),
        "mean_accuracy": mean,
        "averaged": {"accuracy": k_avg / n, "ci95": list(wilson_ci(k_avg, n)), "predicted": averaged},
        "correct_every_order": sum(all(p == g for p in ps) for ps, g in zip(preds, gold)) / n,
        "consistency": sum(len(set(ps)) == 1 and ps[0] is not None for ps in preds) / n,
        "bias_pooled": selection_bias(shown_gold, shown_pred, width),
    }
