"""PubMedQA (PQA-L): its converter, its three labels and the official test split's ground truth."""

from __future__ import annotations

import json
from pathlib import Path

from medtune.data.draft import Draft, optional, require, row_id
from medtune.data.readers import RowError
from medtune.errors import MedtuneError


PUBMEDQA_LABELS = ["yes", "no", "maybe"]


def pubmedqa(rec: dict, line: int, ctx: dict) -> Draft:
    """PubMedQA PQA-L: yes/no/maybe with the abstract as context; official split if known."""
    label = require(rec, "final_decision")
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
    split = optional(rec, "official_split")
    if split is None and ctx.get("pubmedqa_test_ids") is not None and pubid is not None:
        split = "test" if str(pubid) in ctx["pubmedqa_test_ids"] else "train_dev"
    return Draft(
        line=line, id=row_id(rec, "pubid"), question=require(rec, "QUESTION"),
        options=list(PUBMEDQA_LABELS), option_fields=["final_decision"] * 3,
        answer=PUBMEDQA_LABELS.index(label), answer_field="final_decision",
        context="\n".join(parts) or None, explanation=optional(rec, "LONG_ANSWER") or None,
        split=split,
        meta={"year": rec["YEAR"]} if rec.get("YEAR") else {},
    )


def pubmedqa_context(path: str) -> dict:
    """The ids of the official test split, from `test_ground_truth.json` beside a PubMedQA file."""
    if path.startswith("hf:"):
        return {}
    truth = Path(path).with_name("test_ground_truth.json")
    if not truth.is_file():
        return {}
    try:
        ids = json.loads(truth.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise MedtuneError("invalid JSON in PubMedQA's test ground truth", path=str(truth)) from None
    if not isinstance(ids, (dict, list)) or not all(isinstance(i, (str, int)) for i in ids):
        raise MedtuneError("expected PubMedQA's test ground truth: an object (or a list) of PubMed ids",
                           path=str(truth))
    return {"pubmedqa_test_ids": {str(i) for i in ids}}
