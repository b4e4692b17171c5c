"""Checks that turn a `Draft` into an `MCQItem`, or say exactly which field is wrong."""

from __future__ import annotations

import math
import sys
from typing import Any

from medtune.data.draft import Draft, content_id
from medtune.data.readers import RowError
from medtune.data.schema import LETTERS, MAX_OPTIONS, MIN_OPTIONS, MCQItem


def _text(value: Any, fld: str, what: str) -> str:
    if value is None:
        raise RowError(fld, f"empty {what}")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RowError(fld, f"expected text for the {what}, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RowError(fld, f"empty {what} ({value}: a missing value in a table)")
    text = str(value).strip()
    if not text:
        raise RowError(fld, f"empty {what}")
    if text.lower() == "nan":
        raise RowError(fld, f"the {what} is the text {text!r}, which is how a broken export writes a missing "
                            f"value; write the text, or drop the row")
    if "\x00" in text:
        raise RowError(fld, f"NUL character in the {what} (a binary file, or a broken export?)")
    return text


def _optional_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):  # NaN: a table's missing value
        return None
    text = str(value).strip()
    return text or None


def _label(value: Any) -> str | None:
    """A short repeated label (subject, topic): one shared string object per distinct value."""
    text = _optional_text(value)
    return None if text is None else sys.intern(text)


def rebase(raw: int, n: int, base: int, fld: str) -> int:
    """A raw answer index counted from `base` as a 0-based one, or a RowError."""
    idx = raw - base
    if not 0 <= idx < n:
        raise RowError(fld, f"answer {raw} out of range {base}-{n - 1 + base} ({base}-based, {n} options)")
    return idx


def resolve_base(draft: Draft, base: int) -> None:
    """Turn a raw answer index into a 0-based one under `base`, or raise a RowError."""
    draft.answer = rebase(draft.raw_index, len(draft.options), base, draft.answer_field)


def check_draft(draft: Draft, source: str, id_prefix: str) -> MCQItem:
    """Validate one draft and build its record.

    A draft whose answer base is not decided yet (`raw_index` set, `answer` None) is checked against
    both bases: an index valid under neither (below 0, above the option count) is an error here, at
    its row; otherwise the record holds the raw index and `sources` rebases it once the file's base
    is known."""
    question = _text(draft.question, _question_field(draft), "question")
    n = len(draft.options)
    if not MIN_OPTIONS <= n <= MAX_OPTIONS:
        raise RowError(draft.option_fields[0] if draft.option_fields else "options",
                       f"{n} options; a question needs {MIN_OPTIONS} to {MAX_OPTIONS}")
    options = tuple(_text(o, f, "option") for o, f in zip(draft.options, draft.option_fields))
    answer = draft.answer
    if answer is None and draft.raw_index is not None:
        answer = draft.raw_index
        if not 0 <= answer <= n:
            raise RowError(draft.answer_field, f"answer {answer} out of range for {n} options whether answers "
                                               f"count from 0 (0-{n - 1}) or from 1 (1-{n})")
    elif answer is None or not 0 <= answer < n:
        shown = answer if answer is not None else draft.raw_index
        raise RowError(draft.answer_field, f"answer index {shown} out of range 0-{n - 1} ({n} options, "
                                           f"letters A-{LETTERS[n - 1]})")
    item_id = draft.id.strip() if isinstance(draft.id, str) else None
    if draft.id is not None and not item_id:
        raise RowError("id", "empty id")
    return MCQItem(
        id=item_id or content_id(id_prefix, question, list(options)),
        question=question, options=options, answer_index=answer,
        subject=_label(draft.subject), topic=_label(draft.topic),
        explanation=_optional_text(draft.explanation), context=_optional_text(draft.context),
        source=source, split=_optional_text(draft.split), meta=draft.meta,
    )


def _question_field(draft: Draft) -> str:
    if draft.option_fields and draft.option_fields[0].startswith("column"):
        return "column 1"
    if draft.answer_field == "final_decision":
        return "QUESTION"
    if draft.answer_field == "label":
        return "sent1"
    return "question"
