"""Exact and near-duplicate questions: word-trigram Jaccard >= a threshold, found exactly.

A question's text for this purpose is its normalised question followed by its normalised options in
sorted order ("|" between them), so case, punctuation, spacing and option order do not matter. Two
questions are near duplicates when the Jaccard similarity of their word-trigram sets is at least
`NEAR_THRESHOLD` (0.7: one replaced word in a 15-word question with one-word options gives 0.72).

Finding the pairs is an exact set-similarity join with prefix filtering (Bayardo et al., "Scaling
up all pairs similarity search", WWW 2007), not MinHash: order each text's distinct trigrams from
the rarest to the most common; two texts with Jaccard >= t must share one of the first
|x| - ceil(t·|x|) + 1 trigrams of each, so only texts that share a rare trigram are compared, and
every pair at or above the threshold is found (no sampling, no missed pairs, same answer whatever
the file order). All of it is numpy over one flat array of trigram hashes; identical texts are
grouped first, so a question copied 500 times is compared once.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable

import numpy as np

from medtune.data.schema import MCQItem

NEAR_THRESHOLD = 0.7
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_K = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)


_findall = _WORD.findall


def normalize(item: MCQItem) -> str:
    """Lower-cased words of the question and its options (options sorted, so order does not matter)."""
    text = "\x1f".join((item.question, *item.options))
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    parts = text.lower().split("\x1f")
    return " | ".join([" ".join(_findall(parts[0])), *sorted([" ".join(_findall(p)) for p in parts[1:]])])


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array."""
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


class Shingles:
    """Trigram hashes of many texts: `flat[offsets[i]:offsets[i + 1]]` belongs to text i.

    Words are hashed with Python's `hash` (fixed within a process): the pairs found depend only on
    the trigram sets, so the hash function changes nothing but the (irrelevant) order of work."""

    def __init__(self, texts: Iterable[str]) -> None:
        hashes: list[int] = []
        lengths: list[int] = []
        for text in texts:
            toks = text.split()
            hashes.extend(map(hash, toks))
            lengths.append(len(toks))
        tok = np.array(hashes, dtype=np.int64).view(np.uint64)
        del hashes
        n_tok = np.asarray(lengths, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(n_tok)])
        self.flat, self.offsets = _trigrams(tok, starts, n_tok)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def set_of(self, i: int) -> set[int]:
        """The trigram hashes of text i as a Python set."""
        return set(self.flat[self.offsets[i]:self.offsets[i + 1]].tolist())


def _trigrams(tok: np.ndarray, starts: np.ndarray, n_tok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One hash per word trigram; a text of fewer than three words is one shingle of all its words."""
    pad = np.concatenate([tok, np.zeros(2, np.uint64)])
    with np.errstate(over="ignore"):
        g = pad[:-2] * _K[0] + pad[1:-1] * _K[1] + pad[2:] * _K[2]
    per = np.maximum(n_tok - 2, 1)
    offsets = np.concatenate([[0], np.cumsum(per)])
    # position p of text i is a whole trigram when p + 2 < end; short texts take their first slot,
    # with the words past the end zeroed so that they hash only their own words.
    first = starts[:-1]
    idx = np.repeat(first - offsets[:-1], per) + np.arange(offsets[-1])
    flat = g[idx] if len(g) else np.zeros(offsets[-1], np.uint64)
    short = np.flatnonzero(n_tok < 3)
    for i in short.tolist():
        words = [int(tok[first[i] + k]) if k < n_tok[i] else 0 for k in range(3)]
        with np.errstate(over="ignore"):
            flat[offsets[i]] = (np.array(words, np.uint64) * _K).sum(dtype=np.uint64)
    return _mix(flat), offsets




class Groups:
    """Texts grouped by exact equality: `rep[i]` is the group of text i, `texts` one per group."""

    def __init__(self, texts: Iterable[str]) -> None:
        first: dict[str, int] = {}
        rep = [first.setdefault(t, len(first)) for t in texts]
        self.rep = np.asarray(rep, dtype=np.int64)
        self.texts = list(first)
        self.sizes = np.bincount(self.rep, minlength=len(self.texts))


class _Sets:
    """Each text's distinct trigrams as ranks (0 = the rarest trigram overall), ascending."""

    def __init__(self, sh: Shingles) -> None:
        n = len(sh)
        uniq, inv, df = np.unique(sh.flat, return_inverse=True, return_counts=True)
        order = np.lexsort((uniq, df))              # rarest first; ties by hash
        rank = np.empty(len(uniq), dtype=np.uint64)
        rank[order] = np.arange(len(uniq), dtype=np.uint64)
        del uniq, df, order
        item = np.repeat(np.arange(n, dtype=np.uint64), np.diff(sh.offsets))
        key = (item << np.uint64(40)) | rank[inv.ravel()]
        del item, rank, inv
        key.sort()
        key = key[np.r_[True, key[1:] != key[:-1]]]  # a trigram twice in one text counts once
        self.item = (key >> np.uint64(40)).astype(np.int64)
        self.rank = (key & np.uint64((1 << 40) - 1)).astype(np.int64)
        self.size = np.bincount(self.item, minlength=n)
        self.start = np.concatenate([[0], np.cumsum(self.size)])

    def set_of(self, i: int) -> set[int]:
        return set(self.rank[self.start[i]:self.start[i + 1]].tolist())


def candidate_pairs(sets: _Sets, threshold: float, keep=None) -> np.ndarray:
    """Pairs (i < j) that share a trigram in both prefixes and pass the length filter, (m, 2)."""
    n = len(sets.size)
    need = np.ceil(threshold * sets.size - 1e-9).astype(np.int64)
    plen = sets.size - need + 1
    pos = np.arange(len(sets.item)) - sets.start[sets.item]
    pre = pos < plen[sets.item]
    p_item, p_rank = sets.item[pre], sets.rank[pre]
    order = np.argsort(p_rank, kind="stable")
    p_item, p_rank = p_item[order], p_rank[order]
    same = np.r_[False, p_rank[1:] == p_rank[:-1], False]
    edges = np.diff(same.astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)   # runs [s, e]
    sizes = ends - starts + 1
    codes = []
    two = starts[sizes == 2]
    if len(two):
        a, b = p_item[two], p_item[two + 1]
        codes.append(np.minimum(a, b) * n + np.maximum(a, b))
    for s, e in zip(starts[sizes > 2].tolist(), ends[sizes > 2].tolist()):
        m = np.sort(p_item[s:e + 1])
        x, y = np.triu_indices(len(m), 1)
        codes.append(m[x] * n + m[y])
    if not codes:
        return np.empty((0, 2), dtype=np.int64)
    uniq = np.unique(np.concatenate(codes))
    i, j = uniq // n, uniq % n
    ok = np.minimum(sets.size[i], sets.size[j]) >= threshold * np.maximum(sets.size[i], sets.size[j]) - 1e-9
    if keep is not None:
        ok &= keep(i, j)
    return np.stack([i[ok], j[ok]], axis=1)


def verify(pairs: np.ndarray, sets: _Sets, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The pairs whose exact trigram Jaccard is >= threshold, and their similarities."""
    cache: dict[int, set[int]] = {}
    keep, sims = [], []
    for k, (i, j) in enumerate(pairs.tolist()):
        a = cache.get(i) or cache.setdefault(i, sets.set_of(i))
        b = cache.get(j) or cache.setdefault(j, sets.set_of(j))
        inter = len(a & b)
        sim = inter / (len(a) + len(b) - inter)
        if sim >= threshold - 1e-12:
            keep.append(k)
            sims.append(sim)
    return pairs[keep] if keep else np.empty((0, 2), np.int64), np.asarray(sims, dtype=np.float64)


def group_pairs(texts: Iterable[str], threshold: float = NEAR_THRESHOLD, side: np.ndarray | None = None
                ) -> tuple[Groups, np.ndarray, np.ndarray]:
    """Exact groups of `texts` and the near pairs between groups (group indices, similarities).

    With `side` (1 or 2 per text), only pairs of groups holding different sides are checked."""
    groups = Groups(texts)
    keep = None
    if side is not None:
        gside = np.zeros(len(groups.texts), dtype=np.int8)
        np.bitwise_or.at(gside, groups.rep, side.astype(np.int8))

        def keep(i: np.ndarray, j: np.ndarray) -> np.ndarray:
            return ((gside[i] & 1) & (gside[j] >> 1)) | ((gside[i] >> 1) & (gside[j] & 1)) > 0
    sets = _Sets(Shingles(groups.texts))
    pairs, sims = verify(candidate_pairs(sets, threshold, keep), sets, threshold)
    return groups, pairs, sims


def near_duplicate_pairs(texts: Iterable[str], threshold: float = NEAR_THRESHOLD) -> list[tuple[int, int, float]]:
    """Index pairs (i < j) whose trigram Jaccard similarity is at least `threshold` (1.0: same text)."""
    groups, pairs, sims = group_pairs(texts, threshold)
    members = _members(groups)
    out = [(a, b, 1.0) for m in members if len(m) > 1 for x, a in enumerate(m) for b in m[x + 1:]]
    for (g, h), s in zip(pairs.tolist(), sims.tolist()):
        out.extend((min(a, b), max(a, b), s) for a in members[g] for b in members[h])
    return sorted(out)


def _members(groups: Groups) -> list[list[int]]:
    members: list[list[int]] = [[] for _ in groups.texts]
    for i, g in enumerate(groups.rep.tolist()):
        members[g].append(i)
    return members


def duplicate_report(items, threshold: float = NEAR_THRESHOLD) -> dict:
    """Exact and near-duplicate pairs within one set, with example ids."""
    groups, pairs, sims = group_pairs((normalize(it) for it in items), threshold)
    sizes = groups.sizes.astype(np.int64)
    first = np.full(len(sizes), -1, dtype=np.int64)
    first[groups.rep[::-1]] = np.arange(len(groups.rep))[::-1]
    examples = [(int(first[g]), int(np.flatnonzero(groups.rep == g)[1]), 1.0)
                for g in np.flatnonzero(sizes > 1)[:10].tolist()]
    examples += [(int(first[g]), int(first[h]), s) for (g, h), s in zip(pairs[:10].tolist(), sims[:10].tolist())]
    examples = sorted((min(a, b), max(a, b), s) for a, b, s in examples)[:10]
    return {"threshold": threshold, "exact_pairs": int((sizes * (sizes - 1) // 2).sum()),
            "near_pairs": int((sizes[pairs[:, 0]] * sizes[pairs[:, 1]]).sum()) if len(pairs) else 0,
            "examples": [[items[a].id, items[b].id, round(s, 3)] for a, b, s in examples]}


def contamination(train, eval_items, threshold: float = NEAR_THRESHOLD) -> dict:
    """How many eval questions have an exact or near twin in train."""
    n = len(train)
    side = np.r_[np.ones(n, np.int8), np.full(len(eval_items), 2, np.int8)]
    texts = [normalize(it) for it in train] + [normalize(it) for it in eval_items]
    groups, pairs, sims = group_pairs(texts, threshold, side)
    del texts
    rep = groups.rep
    has_train = np.zeros(len(groups.texts), dtype=bool)
    has_train[rep[:n]] = True
    exact = has_train[rep[n:]]
    near_group = np.zeros(len(groups.texts), dtype=bool)   # groups with a near twin holding train
    best = {}
    for (g, h), s in zip(pairs.tolist(), sims.tolist()):
        for a, b in ((g, h), (h, g)):
            if has_train[b]:
                near_group[a] = True
                best.setdefault(a, (b, s))
    near = near_group[rep[n:]] & ~exact
    train_of = np.full(len(groups.texts), -1, dtype=np.int64)
    train_of[rep[:n][::-1]] = np.arange(n)[::-1]
    examples = []
    for j in np.flatnonzero(exact | near)[:10].tolist():
        g = rep[n + j]
        t, s = (train_of[g], 1.0) if exact[j] else (train_of[best[g][0]], best[g][1])
        examples.append([train[int(t)].id, eval_items[j].id, round(s, 3)])
    return {"threshold": threshold, "eval_with_exact_twin_in_train": int(exact.sum()),
            "eval_with_near_twin_in_train": int(near.sum()), "examples": examples}


def clusters(items, threshold: float = NEAR_THRESHOLD) -> tuple[np.ndarray, np.ndarray, dict]:
    """Per item: a cluster label (exact and near duplicates share one) and its exact-text group;
    and counts of what linked them."""
    groups, pairs, _ = group_pairs((normalize(it) for it in items), threshold)
    parent = list(range(len(groups.texts)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for g, h in pairs.tolist():
        parent[find(g)] = find(h)
    root = np.array([find(g) for g in range(len(parent))], dtype=np.int64)
    labels = root[groups.rep]
    sizes = groups.sizes.astype(np.int64)
    n_pairs = int((sizes * (sizes - 1) // 2).sum() + (sizes[pairs[:, 0]] * sizes[pairs[:, 1]]).sum()
                  if len(pairs) else (sizes * (sizes - 1) // 2).sum())
    per = np.bincount(labels, minlength=len(parent))
    return labels, groups.rep, {"duplicate_pairs": n_pairs, "multi_question_clusters": int((per > 1).sum())}
