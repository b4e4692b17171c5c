"""Stable train/eval splits by record id, and duplicate / contamination detection.

A record's side depends only on sha256(seed:id) — never on file order or machine. Questions that
are exact or near duplicates of each other form a cluster, and a cluster goes to one side whole,
so that no eval question has a twin in train. Near-duplicates: Jaccard similarity of word trigrams
of the normalised question + sorted options, found with MinHash LSH and then checked exactly.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Sequence

from medtune.data.schema import MCQItem
from medtune.errors import MedtuneError

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
N_PERM, BANDS = 128, 32
_PRIME = (1 << 31) - 1


def normalize(item: MCQItem) -> str:
    """Lower-cased words of the question and its options (options sorted, so order does not matter)."""
    def words(text: str) -> str:
        return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).lower()))
    return " | ".join([words(item.question), *sorted(words(o) for o in item.options)])


def _shingles(text: str) -> set[str]:
    toks = text.split()
    if len(toks) < 3:
        return {" ".join(toks)}
    return {" ".join(toks[i:i + 3]) for i in range(len(toks) - 2)}


def _h64(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")


def _minhash(shingle_sets: list[set[str]]):
    import numpy as np

    rng = np.random.default_rng(12345)  # fixed: signatures must not depend on the run's seed
    a = rng.integers(1, _PRIME, size=N_PERM, dtype=np.uint64)
    b = rng.integers(0, _PRIME, size=N_PERM, dtype=np.uint64)
    sigs = np.empty((len(shingle_sets), N_PERM), dtype=np.uint64)
    for i, sh in enumerate(shingle_sets):
        x = np.array([_h64(s) % _PRIME for s in sh], dtype=np.uint64)[:, None]
        sigs[i] = ((a[None, :] * x + b[None, :]) % _PRIME).min(axis=0)
    return sigs


def near_duplicate_pairs(texts: Sequence[str], threshold: float = 0.8) -> list[tuple[int, int, float]]:
    """Index pairs (i < j) whose trigram Jaccard similarity is at least `threshold`."""
    shingles = [_shingles(t) for t in texts]
    sigs = _minhash(shingles)
    rows = N_PERM // BANDS
    candidates: set[tuple[int, int]] = set()
    for band in range(BANDS):
        buckets: dict[bytes, list[int]] = {}
        for i in range(len(texts)):
            buckets.setdefault(sigs[i, band * rows:(band + 1) * rows].tobytes(), []).append(i)
        for members in buckets.values():
            if 1 < len(members) <= 200:
                candidates.update((members[x], members[y]) for x in range(len(members))
                                  for y in range(x + 1, len(members)))
    out = []
    for i, j in sorted(candidates):
        inter = len(shingles[i] & shingles[j])
        sim = inter / (len(shingles[i]) + len(shingles[j]) - inter)
        if sim >= threshold:
            out.append((i, j, sim))
    return out


def duplicate_report(items: Sequence[MCQItem], threshold: float = 0.8) -> dict:
    """Exact and near-duplicate pairs within one set, with example ids."""
    texts = [normalize(it) for it in items]
    pairs = near_duplicate_pairs(texts, threshold)
    exact = [(i, j) for i, j, _ in pairs if texts[i] == texts[j]]
    near = [(i, j, s) for i, j, s in pairs if texts[i] != texts[j]]
    return {"threshold": threshold, "exact_pairs": len(exact), "near_pairs": len(near),
            "examples": [[items[i].id, items[j].id, round(s, 3)] for i, j, s in pairs[:10]]}


def contamination(train: Sequence[MCQItem], eval_items: Sequence[MCQItem], threshold: float = 0.8) -> dict:
    """How many eval questions have an exact or near twin in train."""
    texts = [normalize(it) for it in train] + [normalize(it) for it in eval_items]
    n = len(train)
    exact, near = set(), set()
    examples = []
    for i, j, s in near_duplicate_pairs(texts, threshold):
        if i < n <= j:
            (exact if texts[i] == texts[j] else near).add(j - n)
            if len(examples) < 10:
                examples.append([train[i].id, eval_items[j - n].id, round(s, 3)])
    near -= exact
    return {"threshold": threshold, "eval_with_exact_twin_in_train": len(exact),
            "eval_with_near_twin_in_train": len(near), "examples": examples}


def split_key(item_id: str, seed: int) -> int:
    """The stable hash that places a record."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{item_id}".encode("utf-8")).digest()[:8], "big")


def split_items(items: Sequence[MCQItem], *, eval_size: int | None = None, eval_fraction: float | None = None,
                seed: int = 0, threshold: float = 0.8) -> tuple[list[MCQItem], list[MCQItem], dict]:
    """Train and eval lists (each in input order) and a summary with the contamination check."""
    n = len(items)
    if (eval_size is None) == (eval_fraction is None):
        raise MedtuneError("give exactly one of --eval-size or --eval-fraction", field="--eval-size")
    if eval_size is not None and not 0 < eval_size < n:
        raise MedtuneError(f"must be between 1 and {n - 1} for {n} records, got {eval_size}", field="--eval-size")
    if eval_fraction is not None and not 0 < eval_fraction < 1:
        raise MedtuneError(f"must be between 0 and 1, got {eval_fraction}", field="--eval-fraction")
    # clusters of duplicates (union-find over the near-duplicate pairs)
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    pairs = near_duplicate_pairs([normalize(it) for it in items], threshold)
    for i, j, _ in pairs:
        parent[find(i)] = find(j)
    clusters: dict[int, list[int]] = {}
    for i in range(n):
        clusters.setdefault(find(i), []).append(i)
    keyed = sorted(clusters.values(), key=lambda m: min(split_key(items[i].id, seed) for i in m))
    in_eval: set[int] = set()
    if eval_size is not None:
        for members in keyed:
            if len(in_eval) + len(members) <= eval_size:
                in_eval.update(members)
            if len(in_eval) == eval_size:
                break
    else:
        limit = int(eval_fraction * 2 ** 64)
        for members in keyed:
            if min(split_key(items[i].id, seed) for i in members) < limit:
                in_eval.update(members)
    train = [it for i, it in enumerate(items) if i not in in_eval]
    evals = [it for i, it in enumerate(items) if i in in_eval]
    summary = {"seed": seed, "train": len(train), "eval": len(evals),
               "duplicate_pairs_in_source": len(pairs),
               "multi_question_clusters": sum(1 for m in clusters.values() if len(m) > 1),
               "contamination": contamination(train, evals, threshold)}
    return train, evals, summary


def split_and_write(items: Sequence[MCQItem], report, *, out: str, eval_size: int | None,
                    eval_fraction: float | None, seed: int, threshold: float) -> str:
    """Split, write train.jsonl / eval.jsonl / split.json atomically, and return a printable summary."""
    from medtune.data.stats import counts_table
    from medtune.io import atomic_write_json, atomic_write_jsonl

    train, evals, summary = split_items(items, eval_size=eval_size, eval_fraction=eval_fraction,
                                        seed=seed, threshold=threshold)
    folder = Path(out)
    atomic_write_jsonl(folder / "train.jsonl", (it.to_dict() for it in train))
    atomic_write_jsonl(folder / "eval.jsonl", (it.to_dict() for it in evals))
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
