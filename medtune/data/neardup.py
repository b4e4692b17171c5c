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

import multiprocessing
import re
import threading
import unicodedata
from array import array
from typing import Iterable

import numpy as np

from medtune.data.schema import MCQItem

NEAR_THRESHOLD = 0.7
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_K = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)


_findall = _WORD.findall
PARALLEL_MIN = 40_000          # below this, a second process costs more than it saves


def normalize(item: MCQItem) -> str:
    """Lower-cased words of the question and its options (options sorted, so order does not matter)."""
    text = "\x1f".join((item.question, *item.options))
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    parts = text.lower().split("\x1f")
    return " | ".join([" ".join(_findall(parts[0])), *sorted([" ".join(_findall(p)) for p in parts[1:]])])


def _item_tokens(items, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Word hashes of `normalize(item).split()` for items[start:stop], without building the text."""
    toks, lengths = array("q"), array("q")
    sep, ext, app = hash("|"), toks.extend, toks.append
    for k in range(start, stop):
        item = items[k]
        text = "\x1f".join((item.question, *item.options))
        if not text.isascii():
            text = unicodedata.normalize("NFKC", text)
        parts = text.lower().split("\x1f")
        before = len(toks)
        ext(map(hash, _findall(parts[0])))
        for words in sorted([_findall(p) for p in parts[1:]]):  # word lists sort as their joined texts
            app(sep)
            ext(map(hash, words))
        lengths.append(len(toks) - before)
    return np.frombuffer(toks, dtype=np.uint64).copy(), np.frombuffer(lengths, dtype=np.int64).copy()


def _text_tokens(texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    toks, lengths = array("q"), array("q")
    for text in texts:
        words = text.split()
        toks.extend(map(hash, words))
        lengths.append(len(words))
    return np.frombuffer(toks, dtype=np.uint64).copy(), np.frombuffer(lengths, dtype=np.int64).copy()


def _child(items, start: int, stop: int, conn) -> None:
    tok, n_tok = _item_tokens(items, start, stop)
    conn.send_bytes(n_tok.tobytes())
    conn.send_bytes(tok.tobytes())
    conn.close()


def item_tokens(items) -> tuple[np.ndarray, np.ndarray]:
    """Word hashes of every item's normalised text and the count per item; for large sets the
    second half is done by a forked process (the hashes agree: a fork keeps the hash seed)."""
    n = len(items)
    if n < PARALLEL_MIN or threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
        return _item_tokens(items, 0, n)
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    half = n // 2
    proc = ctx.Process(target=_child, args=(items, half, n, send), daemon=True)
    proc.start()
    send.close()
    tok_a, len_a = _item_tokens(items, 0, half)
    try:
        len_b = np.frombuffer(recv.recv_bytes(), dtype=np.int64)
        tok_b = np.frombuffer(recv.recv_bytes(), dtype=np.uint64)
    except EOFError:  # the helper died (out of memory, killed): do its half here
        tok_b, len_b = _item_tokens(items, half, n)
    proc.join()
    return np.concatenate([tok_a, tok_b]), np.concatenate([len_a, len_b])


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

    def __init__(self, tok: np.ndarray, n_tok: np.ndarray) -> None:
        self.flat, self.offsets = _trigrams(tok, n_tok)

    def __len__(self) -> int:
        return len(self.offsets) - 1


def _trigrams(tok: np.ndarray, n_tok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One hash per word trigram; a text of one or two words is one shingle of all its words."""
    ends = np.cumsum(n_tok)
    with np.errstate(over="ignore"):
        g = tok * _K[0]
        g[:-1] += tok[1:] * _K[1]
        g[:-2] += tok[2:] * _K[2]
    keep = np.ones(len(tok), dtype=bool)
    full = n_tok >= 3
    keep[ends[full] - 1] = False
    keep[ends[full] - 2] = False
    two = n_tok == 2
    keep[ends[two] - 1] = False
    with np.errstate(over="ignore"):
        g[ends[two] - 2] = tok[ends[two] - 2] * _K[0] + tok[ends[two] - 1] * _K[1]
        g[ends[n_tok == 1] - 1] = tok[ends[n_tok == 1] - 1] * _K[0]
    flat = g[keep]
    del g, keep
    per = np.where(full, n_tok - 2, np.minimum(n_tok, 1))
    return _mix(flat), np.concatenate([[0], np.cumsum(per)])


class Groups:
    """Texts grouped by exact equality of their word sequence: `rep[i]` is the group of text i."""

    def __init__(self, tok: np.ndarray, n_tok: np.ndarray) -> None:
        ends = np.cumsum(n_tok).tolist()
        first: dict[bytes, int] = {}
        rep, start = [], 0
        for end in ends:
            rep.append(first.setdefault(tok[start:end].tobytes(), len(first)))
            start = end
        del first
        self.rep = np.array(rep, dtype=np.int64)
        self.sizes = np.bincount(self.rep, minlength=int(self.rep.max()) + 1 if len(rep) else 0)
        self.first = np.unique(self.rep, return_index=True)[1]       # the first text of each group

    def subset(self, tok: np.ndarray, n_tok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The tokens of one text per group (the first), in group order."""
        keep = np.zeros(len(n_tok), dtype=bool)
        keep[self.first] = True
        return tok[np.repeat(keep, n_tok)], n_tok[keep]


class _Sets:
    """Each text's distinct trigrams as ranks (0 = the rarest trigram overall), ascending."""

    def __init__(self, sh: Shingles) -> None:
        """Built from `sh`, whose hash array it takes over (`sh.flat` is None afterwards)."""
        n, flat, sh.flat = len(sh), sh.flat, None
        order = np.argsort(flat)
        sorted_h = flat[order]
        del flat
        new = np.empty(len(sorted_h), dtype=bool)
        new[:1] = True
        np.not_equal(sorted_h[1:], sorted_h[:-1], out=new[1:])
        del sorted_h
        uid = np.cumsum(new, dtype=np.int32) - 1          # distinct trigram id, in hash order
        df = np.bincount(uid)
        rank = np.empty(len(df), dtype=np.uint64)
        rank[np.argsort(df, kind="stable")] = np.arange(len(df), dtype=np.uint64)  # rarest first
        del df, new
        key = np.empty(len(order), dtype=np.uint64)
        key[order] = rank[uid]                              # rank of each trigram, in text order
        del order, uid, rank
        item = np.repeat(np.arange(n, dtype=np.uint64), np.diff(sh.offsets))
        key |= item << np.uint64(32)
        del item
        key.sort()
        keep = np.empty(len(key), dtype=bool)
        keep[:1] = True
        np.not_equal(key[1:], key[:-1], out=keep[1:])      # a trigram twice in one text counts once
        key = key[keep]
        self.item = (key >> np.uint64(32)).astype(np.int32)
        self.rank = (key & np.uint64(0xFFFFFFFF)).astype(np.int32)
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
    p_item, p_rank = sets.item[pre].astype(np.int64), sets.rank[pre]
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


def group_pairs(tokens: tuple[np.ndarray, np.ndarray], threshold: float = NEAR_THRESHOLD,
                side: np.ndarray | None = None) -> tuple[Groups, np.ndarray, np.ndarray]:
    """Exact groups of the texts (`item_tokens`) and the near pairs between groups (group indices,
    similarities). With `side` (1 or 2 per text), only pairs of groups holding both sides are checked."""
    groups = Groups(*tokens)
    keep = None
    if side is not None:
        gside = np.zeros(len(groups.sizes), dtype=np.int8)
        np.bitwise_or.at(gside, groups.rep, side.astype(np.int8))

        def keep(i: np.ndarray, j: np.ndarray) -> np.ndarray:
            return ((gside[i] & 1) & (gside[j] >> 1)) | ((gside[i] >> 1) & (gside[j] & 1)) > 0
    sh = Shingles(*groups.subset(*tokens))
    del tokens
    sets = _Sets(sh)
    del sh
    pairs, sims = verify(candidate_pairs(sets, threshold, keep), sets, threshold)
    return groups, pairs, sims
