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


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v) if not isinstance(v, str) else v


def _int_index(value: Any, fld: str) -> int:
    if isinstance(value, bool):
        raise RowError(fld, f"expected an integer answer index, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise RowError(fld, f"expected an integer answer index, got {value!r}")


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
        line=line, id=None if rec.get("id") is None else str(rec["id"]),
        question=_require(rec, "question"), options=options, option_fields=keys,
        raw_index=_int_index(_require(rec, "cop"), "cop"), answer_field="cop",
        subject=rec.get("subject_name") or None, topic=rec.get("topic_name") or None,
        explanation=rec.get("exp") or None,
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
        line=line, id=None if rec.get("id") is None else str(rec["id"]),
        question=_require(rec, "question"), options=options,
        option_fields=[f"options.{k}" for k in letters], answer=idx, answer_field="answer_idx",
        subject=rec.get("meta_info") or None,
    )


PUBMEDQA_LABELS = ["yes", "no", "maybe"]


def pubmedqa(rec: dict, line: int, ctx: dict) -> Draft:
    """PubMedQA PQA-L: yes/no/maybe with the abstract as context; official split if known."""
    label = _require(rec, "final_decision")
    if label not in PUBMEDQA_LABELS:
        raise RowError("final_decision", f"expected yes, no or maybe, got {label!r}")
    contexts = rec.get("CONTEXTS") or []
    labels = rec.get("LABELS") or []
    if not isinstance(contexts, list):
        raise RowError("CONTEXTS", "expected a list of abstract sections")
    parts = [f"{lab}: {txt}" if lab else str(txt)
             for lab, txt in zip(list(labels) + [None] * len(contexts), contexts)]
    pubid = rec.get("pubid")
    split = rec.get("official_split")
    if split is None and ctx.get("pubmedqa_test_ids") is not None and pubid is not None:
        split = "test" if str(pubid) in ctx["pubmedqa_test_ids"] else "train_dev"
    return Draft(
        line=line, id=None if pubid is None else str(pubid), question=_require(rec, "QUESTION"),
        options=list(PUBMEDQA_LABELS), option_fields=["final_decision"] * 3,
        answer=PUBMEDQA_LABELS.index(label), answer_field="final_decision",
        context="\n".join(parts) or None, explanation=rec.get("LONG_ANSWER") or None,
        split=split, meta={"year": rec["YEAR"]} if rec.get("YEAR") else {},
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
    subject = rec.get("subject") or ctx.get("subject")
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
    return Draft(
        line=line, id=None if rec.get("id") is None else str(rec["id"]),
        question=_require(rec, "question"), options=options,
        option_fields=[f"options[{i}]" for i in range(len(options))], answer=idx,
        answer_field="answer_index", subject=rec.get("subject"), topic=rec.get("topic"),
        explanation=rec.get("explanation"), context=rec.get("context"), split=rec.get("split"),
        meta=rec.get("meta") or {},
    )


def swag(rec: dict, line: int, ctx: dict) -> Draft:
    """SWAG-style rows (the Hub's MedQA-USMLE-4-options-hf): sent1, ending0..N, label 0-based."""
    keys = sorted((k for k in rec if re.fullmatch(r"ending\d+", k)), key=lambda k: int(k[6:]))
    return Draft(
        line=line, id=None if rec.get("id") is None else str(rec["id"]),
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
    draft = Draft(line=line, id=None if get("id") is None else str(get("id")),
                  question=get("question", required=True), options=options, option_fields=fields,
                  answer_field=acol, subject=get("subject"), topic=get("topic"),
                  explanation=get("explanation"), context=get("context"))
    if isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in LETTERS:
        draft.answer = _letter_index(value, acol, len(options))
    elif isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        draft.raw_index = _int_index(value, acol)
    elif isinstance(value, str) and value in options:
        draft.answer = options.index(value)
    else:
        raise RowError(acol, f"answer {value!r} is neither a letter, an index nor one of the options")
    return draft


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
