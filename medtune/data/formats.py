"""One converter per benchmark format: a raw row in, a `Draft` out (or a `RowError`).

Adding a benchmark means adding one function here (or a module of its own, like `pubmedqa`) and one
line in `FORMATS`; a format that reads something about the whole file (a subject from its name, a
split list beside it) adds one line in `CONTEXTS` too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from medtune.data.draft import INDEX, Draft, int_index, letter_index, optional, require, row_id
from medtune.data.pubmedqa import pubmedqa, pubmedqa_context
from medtune.data.readers import RowError, hf_spec
from medtune.data.schema import LETTERS


def medmcqa(rec: dict, line: int, ctx: dict) -> Draft:
    """MedMCQA: opa..opd and `cop` (1-based in the original release, 0-based on the Hub)."""
    keys = ["opa", "opb", "opc", "opd"]
    options = [require(rec, k) for k in keys]
    return Draft(
        line=line, id=row_id(rec, "id"),
        question=require(rec, "question"), options=options, option_fields=keys,
        raw_index=int_index(require(rec, "cop"), "cop"), answer_field="cop",
        subject=optional(rec, "subject_name") or None, topic=optional(rec, "topic_name") or None,
        explanation=optional(rec, "exp") or None,
        meta={"choice_type": rec["choice_type"]} if rec.get("choice_type") else {},
    )


def medqa(rec: dict, line: int, ctx: dict) -> Draft:
    """MedQA-USMLE: `options` {A: .., B: ..} (4 or 5) and `answer_idx` a letter."""
    opts = require(rec, "options")
    if not isinstance(opts, dict) or not opts:
        raise RowError("options", f"expected an object of lettered options, got {type(opts).__name__}")
    letters = sorted(opts)
    if letters != list(LETTERS[: len(letters)]):
        raise RowError("options", f"option keys must be A, B, C, ... in order, got {', '.join(letters)}")
    options = [opts[k] for k in letters]
    idx = letter_index(require(rec, "answer_idx"), "answer_idx", len(options))
    answer = rec.get("answer")
    if isinstance(answer, str) and isinstance(options[idx], str) and answer.strip() != options[idx].strip():
        raise RowError("answer", f"{answer!r} does not match options.{letters[idx]} {options[idx]!r}")
    return Draft(
        line=line, id=row_id(rec, "id"),
        question=require(rec, "question"), options=options,
        option_fields=[f"options.{k}" for k in letters], answer=idx, answer_field="answer_idx",
        subject=optional(rec, "meta_info") or None,
    )



def mmlu(cells: list, line: int, ctx: dict) -> Draft:
    """MMLU CSV without header: question, options..., answer letter; subject from the file name."""
    if not isinstance(cells, list):
        raise RowError("columns", "expected a header-less row: question, options..., answer letter")
    if len(cells) < 4:
        raise RowError("columns", f"expected question, 2+ options and an answer letter, got {len(cells)} cells")
    options = cells[1:-1]
    idx = letter_index(cells[-1], f"column {len(cells)}", len(options))
    return Draft(
        line=line, id=None, question=cells[0], options=options,
        option_fields=[f"column {i}" for i in range(2, len(cells))], answer=idx,
        answer_field=f"column {len(cells)}", subject=ctx.get("subject"),
    )


def mmlu_hub(rec: dict, line: int, ctx: dict) -> Draft:
    """MMLU as on the Hub (cais/mmlu): `choices` a list, `answer` a 0-based index, `subject`."""
    options = require(rec, "choices")
    if not isinstance(options, list):
        raise RowError("choices", f"expected a list of option texts, got {type(options).__name__}")
    subject = optional(rec, "subject") or ctx.get("subject")
    return Draft(
        line=line, id=None, question=require(rec, "question"), options=options,
        option_fields=[f"choices[{i}]" for i in range(len(options))],
        answer=int_index(require(rec, "answer"), "answer"), answer_field="answer", subject=subject,
    )


def mmlu_context(path: str) -> dict:
    """An MMLU file's subject, from its name (`anatomy_test.csv`: anatomy)."""
    stem = Path(path).stem
    for suffix in ("_test", "_val", "_dev", "_train"):
        stem = stem.removesuffix(suffix)
    return {"subject": stem}


def mmlu_hub_context(path: str) -> dict:
    """The subject an `hf:` spec names as its config (`hf:cais/mmlu:anatomy:test`), if it names one."""
    if path.startswith("hf:") and hf_spec(path)[1]:
        return {"subject": hf_spec(path)[1]}
    return {}


def medtune_native(rec: dict, line: int, ctx: dict) -> Draft:
    """medtune's own format (what `medtune data split` writes): options list, answer_index 0-based."""
    options = require(rec, "options")
    if not isinstance(options, list):
        raise RowError("options", f"expected a list of option texts, got {type(options).__name__}")
    idx = int_index(require(rec, "answer_index"), "answer_index")
    meta = rec.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise RowError("meta", f"expected an object, got {type(meta).__name__}")
    return Draft(
        line=line, id=row_id(rec, "id"),
        question=require(rec, "question"), options=options,
        option_fields=[f"options[{i}]" for i in range(len(options))], answer=idx,
        answer_field="answer_index", subject=optional(rec, "subject"), topic=optional(rec, "topic"),
        explanation=optional(rec, "explanation"), context=optional(rec, "context"), split=optional(rec, "split"),
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
        line=line, id=row_id(rec, "id"),
        question=require(rec, "sent1"), options=[rec[k] for k in keys], option_fields=keys,
        answer=int_index(require(rec, "label"), "label"), answer_field="label",
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
    opt = {k: optional(rec, mapping[k]) for k in ("subject", "topic", "explanation", "context") if k in mapping}
    draft = Draft(line=line, id=row_id(rec, mapping["id"]) if "id" in mapping else None,
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
        draft.answer = letter_index(value, acol, len(options))
        others = [i for i in matches if i != draft.answer]
    elif is_number or (isinstance(value, str) and INDEX.fullmatch(shown)):
        draft.raw_index = int_index(value, acol)
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

# what a format reads once per file, from the source's path, into the `ctx` its converter gets
CONTEXTS: dict[str, Callable[[str], dict]] = {
    "mmlu": mmlu_context, "mmlu_hub": mmlu_hub_context, "pubmedqa": pubmedqa_context,
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
