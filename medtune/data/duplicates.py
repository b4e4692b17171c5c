"""Duplicate reports over MCQItems: pairs within a set, contamination of one set by another, and
clusters for splitting. The finding itself is `medtune.data.neardup`."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from medtune.data.neardup import NEAR_THRESHOLD, Groups, _text_tokens, group_pairs, item_tokens, normalize
from medtune.data.schema import MCQItem

__all__ = ["NEAR_THRESHOLD", "normalize", "near_duplicate_pairs", "duplicate_report", "contamination",
           "contaminated", "clusters"]


def _members(groups: Groups) -> list[list[int]]:
    members: list[list[int]] = [[] for _ in groups.sizes]
    for i, g in enumerate(groups.rep.tolist()):
        members[g].append(i)
    return members


def _pair_count(groups: Groups, pairs: np.ndarray) -> tuple[int, int]:
    """(exact pairs, near pairs) counted between texts, not groups."""
    sizes = groups.sizes.astype(np.int64)
    exact = int((sizes * (sizes - 1) // 2).sum())
    near = int((sizes[pairs[:, 0]] * sizes[pairs[:, 1]]).sum()) if len(pairs) else 0
    return exact, near


def near_duplicate_pairs(texts: Iterable[str], threshold: float = NEAR_THRESHOLD) -> list[tuple[int, int, float]]:
    """Index pairs (i < j) of normalised texts whose trigram Jaccard is >= `threshold` (1.0: same words)."""
    groups, pairs, sims = group_pairs(_text_tokens(texts), threshold)
    members = _members(groups)
    out = [(a, b, 1.0) for m in members if len(m) > 1 for x, a in enumerate(m) for b in m[x + 1:]]
    for (g, h), s in zip(pairs.tolist(), sims.tolist()):
        out.extend((min(a, b), max(a, b), s) for a in members[g] for b in members[h])
    return sorted(out)


def duplicate_report(items: Sequence[MCQItem], threshold: float = NEAR_THRESHOLD) -> dict:
    """Exact and near-duplicate pairs within one set, with example ids."""
    groups, pairs, sims = group_pairs(item_tokens(items), threshold)
    exact, near = _pair_count(groups, pairs)
    examples = []
    for g in np.flatnonzero(groups.sizes > 1)[:10].tolist():
        second = int(np.flatnonzero(groups.rep == g)[1])
        examples.append((int(groups.first[g]), second, 1.0))
    for (g, h), s in zip(pairs[:10].tolist(), sims[:10].tolist()):
        a, b = int(groups.first[g]), int(groups.first[h])
        examples.append((min(a, b), max(a, b), s))
    return {"threshold": threshold, "exact_pairs": exact, "near_pairs": near,
            "examples": [[items[a].id, items[b].id, round(s, 3)] for a, b, s in sorted(examples)[:10]]}


def contaminated(train: Sequence[MCQItem], eval_items: Sequence[MCQItem], threshold: float = NEAR_THRESHOLD
                 ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, float]]]:
    """Per eval item: has an exact twin in train, has only a near one; and for each, the first
    train index of its closest twin and the similarity (-1, 0.0 when none)."""
    n = len(train)
    both = list(train) + list(eval_items)
    side = np.r_[np.ones(n, np.int8), np.full(len(eval_items), 2, np.int8)]
    groups, pairs, sims = group_pairs(item_tokens(both), threshold, side)
    del both
    rep = groups.rep
    first_train = np.full(len(groups.sizes), -1, dtype=np.int64)
    groups_with_train, first_index = np.unique(rep[:n], return_index=True)
    first_train[groups_with_train] = first_index
    exact = first_train[rep[n:]] >= 0
    best: dict[int, tuple[int, float]] = {}        # group -> (a near group holding train, similarity)
    for (g, h), s in zip(pairs.tolist(), sims.tolist()):
        for a, b in ((g, h), (h, g)):
            if first_train[b] >= 0 and (a not in best or s > best[a][1]):
                best[a] = (b, s)
    near = np.array([int(g) in best for g in rep[n:].tolist()], dtype=bool) & ~exact
    twin = []
    for j, g in enumerate(rep[n:].tolist()):
        if exact[j]:
            twin.append((int(first_train[g]), 1.0))
        elif near[j]:
            twin.append((int(first_train[best[g][0]]), best[g][1]))
        else:
            twin.append((-1, 0.0))
    return exact, near, twin


def contamination(train: Sequence[MCQItem], eval_items: Sequence[MCQItem], threshold: float = NEAR_THRESHOLD) -> dict:
    """How many eval questions have an exact or near twin in train."""
    exact, near, twin = contaminated(train, eval_items, threshold)
    examples = [[train[twin[j][0]].id, eval_items[j].id, round(twin[j][1], 3)]
                for j in np.flatnonzero(exact | near)[:10].tolist()]
    return {"threshold": threshold, "eval_with_exact_twin_in_train": int(exact.sum()),
            "eval_with_near_twin_in_train": int(near.sum()), "examples": examples}


def clusters(items: Sequence[MCQItem], threshold: float = NEAR_THRESHOLD) -> tuple[np.ndarray, np.ndarray, dict]:
    """Per item: a cluster label (exact and near duplicates share one) and its exact-text group;
    and counts of what linked them."""
    groups, pairs, _ = group_pairs(item_tokens(items), threshold)
    parent = list(range(len(groups.sizes)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for g, h in pairs.tolist():
        parent[find(g)] = find(h)
    root = np.array([find(g) for g in range(len(parent))], dtype=np.int64)
    labels = root[groups.rep]
    exact, near = _pair_count(groups, pairs)
    per = np.bincount(labels, minlength=len(parent))
    return labels, groups.rep, {"duplicate_pairs": exact + near, "multi_question_clusters": int((per > 1).sum())}
