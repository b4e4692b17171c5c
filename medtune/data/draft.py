"""A row turned into record fields (`Draft`), and the field readers every format's converter shares."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from medtune.data.readers import RowError
from medtune.data.schema import LETTERS


@dataclass
class Draft:
    """A row turned into record fields, before answer-base resolution and checks."""

    line: int
    id: str | None
    question: Any
    options: list[Any]
    option_fields: list[str]
    answer: int | None = None          # resolved 0-based index
    raw_index: int | None = None       # an index whose base (0 or 1) is decided per file
    answer_field: str = "answer"
    subject: str | None = None
    topic: str | None = None
    explanation: str | None = None
    context: str | None = None
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def content_id(prefix: str, question: str, options: list[str]) -> str:
    """A stable id from the text, for formats whose rows carry none."""
    h = hashlib.sha1(("\x1f".join([question, *options])).encode("utf-8")).hexdigest()[:12]
    return f"{prefix}-{h}"


INDEX = re.compile(r"-?[0-9]+")    # ASCII digits only: "²" or "٣" is not an index


def int_index(value: Any, fld: str) -> int:
    """An answer index: an integer, a whole float or a string of ASCII digits."""
    if isinstance(value, bool):
        raise RowError(fld, f"expected an integer answer index, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:  # beyond: digits were lost
        return int(value)
    if isinstance(value, str) and INDEX.fullmatch(value.strip()):
        return int(value.strip())
    raise RowError(fld, f"expected an integer answer index, got {value!r}")


def optional(rec: dict, key: str) -> Any:
    """An optional text field (subject, explanation, context, ...): text, a number or absent."""
    value = rec.get(key)
    if value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool)):
        return value
    raise RowError(key, f"expected text, got {type(value).__name__}")


def row_id(rec: dict, key: str) -> str | None:
    """The row's id as text (a number is written out), or None when it has none."""
    value = rec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RowError(key, f"expected text or an integer id, got {type(value).__name__}")
    return str(value)


def require(rec: dict, key: str) -> Any:
    """A field the format cannot do without."""
    if key not in rec:
        raise RowError(key, "missing field")
    return rec[key]


def letter_index(value: Any, fld: str, n: int) -> int:
    """An answer letter (A, b, ...) as a 0-based index among n options."""
    if not isinstance(value, str) or len(value.strip()) != 1 or value.strip().upper() not in LETTERS:
        raise RowError(fld, f"expected an answer letter A-{LETTERS[max(n, 1) - 1]}, got {value!r}")
    idx = LETTERS.index(value.strip().upper())
    if idx >= n:
        raise RowError(fld, f"answer {value.strip()!r} out of range: there are {n} options (A-{LETTERS[n - 1]})")
    return idx
