"""Synthetic MedMCQA-layout rows (the Hub's columns) and planted twins, for benchmarks and tests.

Words, lengths, subjects and question openings are drawn from the built-in MedMCQA dev file, so a
generated file looks like the real train split to every pass that reads it (sizes, vocabulary,
shared openings such as "Which of the following"), while its questions are random word strings.
`plant_twins` adds edited copies of chosen rows (exact, one word replaced / inserted / deleted,
options reordered, whitespace and case changed) and says which row each copies.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from medtune.data.sources import BUILTIN

OPTION_KEYS = ("opa", "opb", "opc", "opd")
TWIN_KINDS = ("exact", "replace", "insert", "delete", "reorder", "case_space")
EDIT_KINDS = ("replace", "insert", "delete")


class _Model:
    """Vocabulary and length distributions read once from the built-in dev file."""

    def __init__(self) -> None:
        rows = [json.loads(line) for line in BUILTIN["medmcqa-dev"].read_text("utf-8").splitlines()]
        words: Counter[str] = Counter()
        for r in rows:
            for k in ("question", *OPTION_KEYS):
                words.update(str(r[k]).split())
        self.vocab = np.array(sorted(words), dtype=object)
        counts = np.array([words[w] for w in self.vocab], dtype=np.float64)
        self.p = counts / counts.sum()
        self.q_len = np.array([max(len(r["question"].split()), 3) for r in rows])
        self.o_len = np.array([max(len(str(r[k]).split()), 1) for r in rows for k in OPTION_KEYS])
        self.exp_len = np.array([len(str(r["exp"]).split()) for r in rows if r.get("exp")])
        self.has_exp = len(self.exp_len) / len(rows)
        self.stems = [" ".join(r["question"].split()[:4]) for r in rows if len(r["question"].split()) > 6]
        self.subjects = [r["subject_name"] for r in rows]
        self.topics = [r["topic_name"] for r in rows]


def _words(model: _Model, rng: np.random.Generator, n: int) -> list[str]:
    return list(model.vocab[rng.choice(len(model.vocab), size=n, p=model.p)])


def generate_rows(n: int, seed: int = 0, cop_base: int = 0) -> Iterator[dict[str, Any]]:
    """`n` rows with the Hub's MedMCQA columns; `cop` counts from `cop_base` (the Hub: 0)."""
    model, rng = _Model(), np.random.default_rng(seed)
    block = 4096
    for start in range(0, n, block):
        m = min(block, n - start)
        q_len = rng.choice(model.q_len, size=m)
        o_len = rng.choice(model.o_len, size=(m, 4))
        e_len = np.where(rng.random(m) < model.has_exp, rng.choice(model.exp_len, size=m), 0)
        pool = iter(_words(model, rng, int(q_len.sum() + o_len.sum() + e_len.sum())))
        stem = rng.random(m) < 0.3
        for i in range(m):
            q = [next(pool) for _ in range(q_len[i])]
            if stem[i]:
                q[:4] = model.stems[rng.integers(len(model.stems))].split()
            opts = [" ".join(next(pool) for _ in range(o_len[i, k])) for k in range(4)]
            exp = " ".join(next(pool) for _ in range(e_len[i])) or None
            pick = int(rng.integers(len(model.subjects)))
            yield {"id": str(uuid.UUID(bytes=rng.bytes(16), version=4)), "question": " ".join(q),
                   **dict(zip(OPTION_KEYS, opts)), "cop": int(rng.integers(4)) + cop_base,
                   "choice_type": "single" if rng.random() < 0.7 else "multi", "exp": exp,
                   "subject_name": model.subjects[pick], "topic_name": model.topics[pick]}


def twin_of(row: dict[str, Any], kind: str, rng: np.random.Generator, vocab: np.ndarray,
            cop_base: int = 0) -> dict[str, Any]:
    """An edited copy of `row` (a new id); `kind` is one of TWIN_KINDS."""
    out = dict(row, id=str(uuid.UUID(bytes=rng.bytes(16), version=4)))
    words = row["question"].split()
    pos = int(rng.integers(len(words)))
    new = str(vocab[rng.integers(len(vocab))])
    while new.lower() == words[pos].lower():
        new = str(vocab[rng.integers(len(vocab))])
    if kind == "replace":
        words[pos] = new
    elif kind == "insert":
        words.insert(pos, new)
    elif kind == "delete":
        del words[pos]
    elif kind == "reorder":
        order = rng.permutation(4)
        while (order == np.arange(4)).all():
            order = rng.permutation(4)
        for k, src in zip(OPTION_KEYS, order):
            out[k] = row[OPTION_KEYS[src]]
        out["cop"] = int(list(order).index(row["cop"] - cop_base)) + cop_base
    elif kind == "case_space":
        words = [w.upper() if i % 3 == 0 else w for i, w in enumerate(words)]
        out["question"] = "  " + "   ".join(words) + " \t"
        return out
    elif kind != "exact":
        raise ValueError(f"unknown twin kind {kind!r}")
    out["question"] = " ".join(words)
    return out


def plant_twins(rows: list[dict[str, Any]], n: int, seed: int = 1, min_words: int = 15,
                kinds: tuple[str, ...] = TWIN_KINDS) -> list[tuple[dict[str, Any], str, str]]:
    """`n` twins of distinct rows whose question has >= `min_words` words, kinds in turn:
    a list of (twin row, id of the row it copies, kind)."""
    rng = np.random.default_rng(seed)
    vocab = _Model().vocab
    eligible = [i for i, r in enumerate(rows) if len(r["question"].split()) >= min_words]
    if len(eligible) < n:
        raise ValueError(f"only {len(eligible)} rows have >= {min_words} words; asked for {n} twins")
    picks = rng.choice(eligible, size=n, replace=False)
    return [(twin_of(rows[i], kinds[k % len(kinds)], rng, vocab), rows[i]["id"], kinds[k % len(kinds)])
            for k, i in enumerate(picks)]


def write_jsonl(path: str | Path, rows) -> Path:
    """Write rows as JSONL (plain, not atomic: benchmark and test inputs only)."""
    path = Path(path)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path
