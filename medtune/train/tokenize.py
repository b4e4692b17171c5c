"""Tokenizing many training examples quickly, and holding them compactly.

`split_encode` tokenizes each context once: the text up to its last added token (a chat template's
`<|im_start|>` and the like) and the short tail after it are tokenized apart, which a tokenizer does
anyway, since it cuts its input at added tokens before any normalisation or pre-tokenization. Tails
repeat ("assistant", "assistant\\nC") and are tokenized once each. The heads go through the Rust
tokenizer directly, in as many threads as there are cores (it releases the GIL), without turning on
the tokenizers library's own thread pool, which would warn after any later fork.

`TokenizedExamples` keeps all input ids in one array, with offsets and the first labelled position of
each example (labels are -100 before it and the input ids from it), so 182,822 examples take tens of
megabytes, are cached as three numpy arrays and load from the cache in a fraction of a second.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from medtune.eval.scoring import finish_pair

IGNORE = -100


def _threads() -> int:
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except AttributeError:  # not on Linux
        return max(1, min(8, os.cpu_count() or 1))


def encode_texts(backend: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of many texts (no special tokens added) through a `tokenizers.Tokenizer`, in threads."""
    encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch
    n = _threads()
    if n == 1 or len(texts) < 256:
        return [e.ids for e in encode(texts, add_special_tokens=False)]
    size = -(-len(texts) // n)
    parts = [texts[i:i + size] for i in range(0, len(texts), size)]
    with ThreadPoolExecutor(len(parts)) as pool:
        done = pool.map(lambda part: [e.ids for e in encode(part, add_special_tokens=False)], parts)
    return [ids for part in done for ids in part]


def _added_tokens(tokenizer: Any) -> re.Pattern | None:
    added = {getattr(t, "content", str(t)) for t in getattr(tokenizer, "added_tokens_decoder", {}).values()}
    added.discard("")
    if not added:
        return None
    return re.compile("|".join(re.escape(t) for t in sorted(added, key=lambda t: (-len(t), t))))


def split_encode(tokenizer: Any, moved: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]] | None:
    """(context ids, continuation ids) for (context, continuation) pairs whose whitespace lm-eval's way
    has been moved already; None when the tokenizer has no Rust backend or no added tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    marks = _added_tokens(tokenizer)
    if backend is None or marks is None:
        return None
    cuts = []
    for context, _ in moved:
        last = None
        for last in marks.finditer(context, max(0, len(context) - 512)):
            pass
        cuts.append(last.end() if last is not None else 0)
    heads = encode_texts(backend, [c[:cut] for (c, _), cut in zip(moved, cuts)])
    tails = sorted({c[cut:] for (c, _), cut in zip(moved, cuts)} | {c[cut:] + k for (c, k), cut in zip(moved, cuts)})
    tail_ids = dict(zip(tails, encode_texts(backend, tails)))
    out = []
    for (context, continuation), cut, head in zip(moved, cuts, heads):
        tail = context[cut:]
        out.append(finish_pair(tokenizer, head + tail_ids[tail], head + tail_ids[tail + continuation]))
    return out


class TokenizedExamples(Sequence):
    """Training examples as flat arrays; item i is {"input_ids": [...], "labels": [...]} like a list's."""

    def __init__(self, ids: Any, offsets: Any, starts: Any):
        self.ids, self.offsets, self.starts = ids, offsets, starts

    @staticmethod
    def builder(vocab_size: int) -> "_Builder":
        return _Builder(vocab_size)

    def to_arrays(self) -> dict[str, Any]:
        """The three arrays, by name (what the cache stores)."""
        return {"ids": self.ids, "offsets": self.offsets, "starts": self.starts}

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> "TokenizedExamples | None":
        """The examples of `to_arrays`' arrays, or None when they do not fit together (a foreign file)."""
        import numpy as np

        try:
            ids, offsets, starts = arrays["ids"], arrays["offsets"], arrays["starts"]
        except KeyError:
            return None
        ints = all(a.ndim == 1 and a.dtype.kind in "iu" for a in (ids, offsets, starts))
        if not ints or len(offsets) != len(starts) + 1 or offsets[0] != 0 or offsets[-1] != len(ids):
            return None
        lengths = np.diff(offsets)
        if (lengths < 0).any() or (starts < 0).any() or (starts > lengths).any():
            return None
        return cls(ids, offsets, starts)

    @property
    def lengths(self) -> list[int]:
        """Tokens of each example."""
        import numpy as np

        return np.diff(self.offsets).tolist()

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        ids = self.ids[self.offsets[i]:self.offsets[i + 1]].tolist()
        start = int(self.starts[i])
        return {"input_ids": ids, "labels": [IGNORE] * start + ids[start:]}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TokenizedExamples):
            return NotImplemented
        import numpy as np

        return (np.array_equal(self.ids, other.ids) and np.array_equal(self.offsets, other.offsets)
                and np.array_equal(self.starts, other.starts))

    __hash__ = None  # type: ignore[assignment]


class _Builder:
    """Collects examples one at a time; `finish()` packs them into a TokenizedExamples."""

    def __init__(self, vocab_size: int):
        self.small = vocab_size <= 65_535
        self.chunks: list[Any] = []
        self.lengths: list[int] = []
        self.starts: list[int] = []

    def add(self, input_ids: list[int], labels: list[int]) -> None:
        import numpy as np

        start = next((i for i, x in enumerate(labels) if x != IGNORE), len(labels))
        if labels[start:] != input_ids[start:]:
            raise ValueError("labels must be -100 up to a position and the input ids from there")
        self.chunks.append(np.asarray(input_ids, dtype=np.uint16 if self.small else np.int32))
        self.lengths.append(len(input_ids))
        self.starts.append(start)

    def finish(self) -> TokenizedExamples:
        import numpy as np

        dtype = np.uint16 if self.small else np.int32
        ids = np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=dtype)
        offsets = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=offsets[1:])
        return TokenizedExamples(ids, offsets, np.asarray(self.starts, dtype=np.int32))
