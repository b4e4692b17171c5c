"""Stable train/eval splits by record id, with duplicate clusters kept on one side.

A record's side depends only on sha256(seed:id) — never on file order or machine. Questions that
are exact or near duplicates of each other (`medtune.data.neardup`: word-trigram Jaccard of the
normalised question + sorted options) form a cluster, and a cluster goes to one side whole, so no
eval question has a twin in train.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from medtune.data.fastjson import dumps_line
from medtune.data.duplicates import (NEAR_THRESHOLD, clusters, contamination, duplicate_report,  # noqa: F401
                                  near_duplicate_pairs, normalize)
from medtune.data.schema import MCQItem
from medtune.data.stats import counts_table
from medtune.errors import MedtuneError


def split_key(item_id: str, seed: int) -> int:
    """The stable hash that places a record."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{item_id}".encode("utf-8")).digest()[:8], "big")


def _check_sizes(n: int, eval_size: int | None, eval_fraction: float | None) -> None:
    if (eval_size is None) == (eval_fraction is None):
        raise MedtuneError("give exactly one of --eval-size or --eval-fraction", field="--eval-size")
    if eval_size is not None and not 0 < eval_size < n:
        raise MedtuneError(f"must be between 1 and {n - 1} for {n} records, got {eval_size}", field="--eval-size")
    if eval_fraction is not None and not 0 < eval_fraction < 1:
        raise MedtuneError(f"must be between 0 and 1, got {eval_fraction}", field="--eval-fraction")


def _eval_mask(labels: np.ndarray, keys: np.ndarray, eval_size: int | None,
               eval_fraction: float | None) -> np.ndarray:
    """Which items go to eval: whole clusters, in the order of their smallest key."""
    n_clusters = int(labels.max()) + 1 if len(labels) else 0
    cmin = np.full(n_clusters, np.iinfo(np.uint64).max, dtype=np.uint64)
    np.minimum.at(cmin, labels, keys)
    if eval_fraction is not None:
        chosen = cmin < np.uint64(min(int(eval_fraction * 2 ** 64), 2 ** 64 - 1))
        return chosen[labels]
    sizes = np.bincount(labels, minlength=n_clusters)
    present = np.flatnonzero(sizes)
    order = present[np.argsort(cmin[present], kind="stable")]
    chosen = np.zeros(n_clusters, dtype=bool)
    total = 0
    for c, size in zip(order.tolist(), sizes[order].tolist()):
        if total + size <= eval_size:
            chosen[c] = True
            total += size
            if total == eval_size:
                break
    return chosen[labels]


def split_items(items: Sequence[MCQItem], *, eval_size: int | None = None, eval_fraction: float | None = None,
                seed: int = 0, threshold: float = NEAR_THRESHOLD) -> tuple[list[MCQItem], list[MCQItem], dict]:
    """Train and eval lists (each in input order) and a summary with the contamination check."""
    n = len(items)
    _check_sizes(n, eval_size, eval_fraction)
    labels, exact, info = clusters(items, threshold)
    keys = np.fromiter((split_key(it.id, seed) for it in items), dtype=np.uint64, count=n)
    in_eval = _eval_mask(labels, keys, eval_size, eval_fraction)
    train = [it for it, e in zip(items, in_eval.tolist()) if not e]
    evals = [it for it, e in zip(items, in_eval.tolist()) if e]
    summary = {"seed": seed, "train": len(train), "eval": len(evals),
               "duplicate_pairs_in_source": info["duplicate_pairs"],
               "multi_question_clusters": info["multi_question_clusters"],
               "contamination": _leaks(labels, exact, in_eval, threshold)}
    return train, evals, summary


def _leaks(labels: np.ndarray, exact: np.ndarray, in_eval: np.ndarray, threshold: float) -> dict:
    """Eval questions whose exact group or cluster also has a train question (0 by construction)."""
    def shared(lab: np.ndarray) -> np.ndarray:
        has_train = np.zeros(int(lab.max()) + 1 if len(lab) else 0, dtype=bool)
        has_train[lab[~in_eval]] = True
        return has_train[lab[in_eval]]
    ex, near = shared(exact), shared(labels)
    return {"threshold": threshold, "eval_with_exact_twin_in_train": int(ex.sum()),
            "eval_with_near_twin_in_train": int((near & ~ex).sum()), "examples": []}


def split_and_write(items: Sequence[MCQItem], report, *, out: str, eval_size: int | None,
                    eval_fraction: float | None, seed: int, threshold: float = NEAR_THRESHOLD) -> str:
    """Split, write train.jsonl / eval.jsonl / split.json atomically, and return a printable summary."""
    from medtune.io import atomic_write_json, atomic_write_jsonl

    train, evals, summary = split_items(items, eval_size=eval_size, eval_fraction=eval_fraction,
                                        seed=seed, threshold=threshold)
    folder = Path(out)
    atomic_write_jsonl(folder / "train.jsonl", (it.to_dict() for it in train), dumps_line)
    atomic_write_jsonl(folder / "eval.jsonl", (it.to_dict() for it in evals), dumps_line)
    atomic_write_json(folder / "split.json", {**summary, "data": report.to_dict(),
                                              "letters": {"train": dict(Counter(i.answer_letter for i in train)),
                                                          "eval": dict(Counter(i.answer_letter for i in evals))}})
    c = summary["contamination"]
    lines = [f"split (seed {seed}): train {len(train)} · eval {len(evals)} → {folder}/train.jsonl, eval.jsonl",
             f"duplicate pairs in the source: {summary['duplicate_pairs_in_source']} "
             f"({summary['multi_question_clusters']} clusters, each kept on one side)",
             f"contamination: {c['eval_with_exact_twin_in_train']} eval questions with an exact twin in train, "
             f"{c['eval_with_near_twin_in_train']} with a near twin (Jaccard ≥ {threshold})",
             "", counts_table({"train": train, "eval": evals})]
    return "\n".join(lines)
