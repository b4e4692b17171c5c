"""One converter per benchmark format: a raw row in, a `Draft` out (or a `RowError`).

Adding a benchmark means adding one function here and one line in `FORMATS`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable

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


_INDEX = re.compile(r"-?[0-9]+")    # ASCII digits only: "²" or "٣" is not an index


def _int_index(value: Any, fld: str) -> int:
    if isinstance(value, bool):
        raise RowError(fld, f"expected an integer answer index, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:  # beyond: digits were lost
        return int(value)
    if isinstance(value, str) and _INDEX.fullmatch(value.strip()):
        return int(value.strip())
    raise RowError(fld, f"expected an integer answer index, got {value!r}")


def _opt(rec: dict, key: str) -> Any:
    """An optional text field (subject, explanation, context, ...): text, a number or absent."""
    value = rec.get(key)
    if value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool)):
        return value
    raise RowError(key, f"expected text, got {type(value).__name__}")


def _row_id(rec: dict, key: str) -> str | None:
    """The row's id as text (a number is written out), or None when it has none."""
    value = rec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RowError(key, f"expected text or an integer id, got {type(value).__name__}")
    return str(value)


def _require(rec: dict, key: str) -> Any:
    if key not in rec:
        raise RowError(key, "missing field")
    return rec[key]


def _letter_index(value: Any, fld: str, n: int) -> int:
    if not isinstance(value, str) or len(value.strip()) != 1 or value.strip().upper() not in LETTERS:
        raise RowError(fld, f"expected an answer letter A-{LETTERS[max(n, 1) - 1]}, got {value!r}")
    idx = LETTERS.index(value.strip().upper())
    if idx >= n:
        raise RowError(fld, f"answer {value.strip()!r} out of range: there are {n} options (A-{LETTERS[n - 1]})")
    return idx


def medmcqa(rec: dict, line: int, ctx: dict) -> Draft:
    """MedMCQA: opa..opd and `cop` (1-based in the original release, 0-based on the Hub)."""
    keys = ["opa", "opb", "opc", "opd"]
    options = [_require(rec, k) for k in keys]
    return Draft(
        line=line, id=_row_id(rec, "id"),
        question=_require(rec, "question"), options=options, option_fields=keys,
        raw_index=_int_index(_require(rec, "cop"), "cop"), answer_field="cop",
        subject=_opt(rec, "subject_name") or None, topic=_opt(rec, "topic_name") or None,
        explanation=_opt(rec, "exp") or None,
        meta={"choice_type": rec["choice_type"]} if rec.get("choice_type") else {},
    )


def medqa(rec: dict, line: int, ctx: dict) -> Draft:
    """MedQA-USMLE: `options` {A: .., B: ..} (4 or 5) and `answer_idx` a letter."""
    opts = _require(rec, "options")
    if not isinstance(opts, dict) or not opts:
        raise RowError("options", f"expected an object of lettered options, got {type(opts).__name__}")
    letters = sorted(opts)
    if letters != list(LETTERS[: len(letters)]):
        raise RowError("options", f"option keys must be A, B, C, ... in order, got {', '.join(letters)}")
    options = [opts[k] for k in letters]
    idx = _letter_index(_require(rec, "answer_idx"), "answer_idx", len(options))
    answer = rec.get("answer")
    if isinstance(answer, str) and isinstance(options[idx], str) and answer.strip() != options[idx].strip():
        raise RowError("answer", f"{answer!r} does not match options.{letters[idx]} {options[idx]!r}")
    return Draft(
        line=line, id=_row_id(rec, "id"),
        question=_require(rec, "question"), options=options,
        option_fields=[f"options.{k}" for k in letters], answer=idx, answer_field="answer_idx",
        subject=_opt(rec, "meta_info") or None,
    )


PUBMEDQA_LABELS = ["yes", "no", "maybe"]


def pubmedqa(rec: dict, line: int, ctx: dict) -> Draft:
    """PubMedQA PQA-L: yes/no/maybe with the abstract as context; official split if known."""
    label = _require(rec, "final_decision")
    if isinstance(label, str) and label.strip().lower() in PUBMEDQA_LABELS:   # "Yes ", "MAYBE": the same label
        label = label.strip().lower()
    if label not in PUBMEDQA_LABELS:
        raise RowError("final_decision", f"expected yes, no or maybe, got {label!r}")
    contexts = rec.get("CONTEXTS") or []
    labels = rec.get("LABELS") or []
    if not isinstance(contexts, list):
        raise RowError("CONTEXTS", "expected a list of abstract sections")
    if not isinstance(labels, list):
        raise RowError("LABELS", f"expected a list of section labels, got {type(labels).__name__}")
    for name, values in (("CONTEXTS", contexts), ("LABELS", labels)):
        bad = next((i for i, v in enumerate(values) if not isinstance(v, (str, type(None)))), None)
        if bad is not None:
            raise RowError(f"{name}[{bad}]", f"expected text, got {type(values[bad]).__name__}")
    parts = [f"{lab}: {txt}" if lab else str(txt)
             for lab, txt in zip(list(labels) + [None] * len(contexts), contexts)]
    pubid = rec.get("pubid")
    split = _opt(rec, "official_split")
    if split is None and ctx.get("pubmedqa_test_ids") is not None and pubid is not None:
        split = "test" if str(pubid) in ctx["pubmedqa_test_ids"] else "train_dev"
    return Draft(
        line=line, id=_row_id(rec, "pubid"), question=_require(rec, "QUESTION"),
        options=list(PUBMEDQA_LABELS), option_fields=["final_decision"] * 3,
        answer=PUBMEDQA_LABELS.index(label), answer_field="final_decision",
        context="\n".join(parts) or None, explanation=_opt(rec, "LONG_ANSWER") or None,
        split=split,
        meta={"year": rec["YEAR"]} if rec.get("YEAR") else {},
    )


def mmlu(cells: list, line: int, ctx: dict) -> Draft:
    """MMLU CSV without header: question, options..., answer letter; subject from the file name."""
    if not isinstance(cells, list):
        raise RowError("columns", "expected a header-less row: question, options..., answer letter")
    if len(cells) < 4:
        raise RowError("columns", f"expected question, 2+ options and an answer letter, got {len(cells)} cells")
    options = cells[1:-1]
    idx = _letter_index(cells[-1], f"column {len(cells)}", len(options))
    return Draft(
        line=line, id=None, question=cells[0], options=options,
        option_fields=[f"column {i}" for i in range(2, len(cells))], answer=idx,
        answer_field=f"column {len(cells)}", subject=ctx.get("subject"),
    )


def mmlu_hub(rec: dict, line: int, ctx: dict) -> Draft:
    """MMLU as on the Hub (cais/mmlu): `choices` a list, `answer` a 0-based index, `subject`."""
    options = _require(rec, "choices")
    if not isinstance(options, list):
        raise RowError("choices", f"expected a list of option texts, got {type(options).__name__}")
    subject = _opt(rec, "subject") or ctx.get("subject")
    return Draft(
        line=line, id=None, question=_require(rec, "question"), options=options,
        option_fields=[f"choices[{i}]" for i in range(len(options))],
        answer=_int_index(_require(rec, "answer"), "answer"), answer_field="answer", subject=subject,
    )


def medtune_native(rec: dict, line: int, ctx: dict) -> Draft:
    """medtune's own format (what `medtune data split` writes): options list, answer_index 0-based."""
    options = _require(rec, "options")
    if not isinstance(options, list):
        raise RowError("options", f"expected a list of option texts, got {type(options).__name__}")
    idx = _int_index(_require(rec, "answer_index"), "answer_index")
    meta = rec.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise RowError("meta", f"expected an object, got {type(meta).__name__}")
    return Draft(
        line=line, id=_row_id(rec, "id"),
        question=_require(rec, "question"), options=options,
        option_fields=[f"options[{i}]" for i in range(len(options))], answer=idx,
        answer_field="answer_index", subject=_opt(rec, "subject"), topic=_opt(rec, "topic"),
        explanation=_opt(rec, "explanation"), context=_opt(rec, "context"), split=_opt(rec, "split"),
        meta=meta or {},
    )


def swag(rec: dict, line: int, ctx: dict) -> Draft:
    """SWAG-style rows (the Hub's MedQA-USMLE-4-options-hf): sent1, ending0..N, label 0-based."""
    keys = sorted((k for k in rec if re.fullmatch(r"ending\d+", k)), key=lambda k: int(k[6:]))
    gap = next((i for i, k in enumerate(keys) if k != f"ending{i}"), None)
    if gap is not None:  # a missing ending would shift every later option, and the answer with them
        raise RowError(f"ending{gap}", f"missing field (endings must be ending0, ending1, ... without gaps; "
                                       f"got {', '.join(keys)})")
    return Draft(
        line=line, id=_row_id(rec, "id"),
        question=_require(rec, "sent1"), options=[rec[k] for k in keys], option_fields=keys,
        answer=_int_index(_require(rec, "label"), "label"), answer_field="label",
    )


def generic(rec: Any, line: int, ctx: dict) -> Draft:
    """Any table with a column mapping: question=, options= (columns, or one list column), answer=."""
    mapping: dict[str, str] = ctx["columns"]
    if not isinstance(rec, dict):
        raise RowError("columns", "the generic format needs named columns (a header row)")

    def get(key: str, required: bool = False) -> Any:
        col = mapping.get(key)
        if col is None:
            return None
        if col not in rec:
            if required:
                raise RowError(col, "missing field")
            return None
        return rec[col]

    ocols = [c.strip() for c in mapping["options"].split(",")]
    if len(ocols) == 1:
        value = rec.get(ocols[0])
        if ocols[0] not in rec:
            raise RowError(ocols[0], "missing field")
        if isinstance(value, dict):
            options, fields = list(value.values()), [f"{ocols[0]}.{k}" for k in value]
        elif isinstance(value, (list, tuple)):
            options, fields = list(value), [f"{ocols[0]}[{i}]" for i in range(len(value))]
        else:
            raise RowError(ocols[0], "one options column must hold a list or an object")
    else:
        for c in ocols:
            if c not in rec:
                raise RowError(c, "missing field")
        options, fields = [rec[c] for c in ocols], ocols
    acol = mapping["answer"]
    value = get("answer", required=True)
    opt = {k: _opt(rec, mapping[k]) for k in ("subject", "topic", "explanation", "context") if k in mapping}
    draft = Draft(line=line, id=_row_id(rec, mapping["id"]) if "id" in mapping else None,
                  question=get("question", required=True), options=options, option_fields=fields,
                  answer_field=acol, **opt)
    _generic_answer(draft, value, acol)
    return draft


def _generic_answer(draft: Draft, value: Any, acol: str) -> None:
    """A generic table's answer: a letter, an index (its base decided per file) or an option's text.
    An answer that is both an option's text and a letter or index naming another option is an error."""
    options = draft.options
    texts = [o.strip() if isinstance(o, str) else o for o in options]
    shown = value.strip() if isinstance(value, str) else value
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    as_text = str(shown) if is_number and float(value).is_integer() else shown
    matches = [i for i, t in enumerate(texts) if isinstance(t, (str, int, float)) and str(t) == str(as_text)]
    if isinstance(value, str) and len(shown) == 1 and shown.upper() in LETTERS:
        draft.answer = _letter_index(value, acol, len(options))
        others = [i for i in matches if i != draft.answer]
    elif is_number or (isinstance(value, str) and _INDEX.fullmatch(shown)):
        draft.raw_index = _int_index(value, acol)
        others = matches
    elif isinstance(value, str) and matches:
        draft.answer = matches[0]
        return
    else:
        raise RowError(acol, f"answer {value!r} is neither a letter, an index nor one of the options")
    if others:
        raise RowError(acol, f"answer {shown!r} is ambiguous: {'a letter' if draft.answer is not None else 'an index'}"
                             f" or the text of option {LETTERS[others[0]]} ({draft.option_fields[others[0]]}); "
                             f"write the answer as a letter A-{LETTERS[len(options) - 1]} that no option's text is")


Converter = Callable[[Any, int, dict], Draft]



FORMATS: dict[str, Converter] = {
    "medmcqa": medmcqa, "medqa": medqa, "pubmedqa": pubmedqa, "mmlu": mmlu,
    "medtune": medtune_native, "swag": swag, "mmlu_hub": mmlu_hub, "generic": generic,
}

GENERIC_KEYS = ("id", "question", "options", "answer", "subject", "topic", "explanation", "context")


def detect_format(sample: Any) -> str | None:
    """Guess the format from one parsed row's fields; None when nothing fits."""
    if isinstance(sample, list):
        return "mmlu"
    if not isinstance(sample, dict):
        return None
    keys = set(sample)
    if {"opa", "opb", "cop"} <= keys:
        return "medmcqa"
    if {"QUESTION", "final_decision"} <= keys:
        return "pubmedqa"
    if {"options", "answer_idx"} <= keys and isinstance(sample.get("options"), dict):
        return "medqa"
    if {"question", "options", "answer_index"} <= keys:
        return "medtune"
    if {"question", "choices", "answer"} <= keys and isinstance(sample.get("choices"), list):
        return "mmlu_hub"
    if {"sent1", "ending0", "label"} <= keys:
        return "swag"
    return None
