"""A question as a client writes it, and a result as the terminal shows it: the bounds every way in
(`medtune ask`, the HTTP API, the Gradio app) checks, questions read from a JSON or JSONL file, and
`medtune ask`'s rendering of an answer."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from medtune.data.schema import LETTERS, MAX_OPTIONS, MIN_OPTIONS, MCQItem
from medtune.errors import MedtuneError
from medtune.eval.scorers import is_generative

MAX_QUESTION_CHARS = 4000
MAX_OPTION_CHARS = 1000
MAX_CONTEXT_CHARS = 12000


@dataclass
class Question:
    """A question to answer: text, 2-10 options, optional context (e.g. a PubMed abstract)."""

    question: str
    options: list[str]
    context: str | None = None
    id: str | None = None

    def check(self, where: str = "question") -> None:
        """Raise a one-line MedtuneError naming the field when the question is out of bounds."""
        if not isinstance(self.question, str) or not self.question.strip():
            raise MedtuneError("must be a non-empty string", field=f"{where}.question")
        if len(self.question) > MAX_QUESTION_CHARS:
            raise MedtuneError(f"is {len(self.question)} characters; at most {MAX_QUESTION_CHARS}",
                               field=f"{where}.question")
        if not isinstance(self.options, (list, tuple)) or not MIN_OPTIONS <= len(self.options) <= MAX_OPTIONS:
            n = len(self.options) if isinstance(self.options, (list, tuple)) else "no list of"
            raise MedtuneError(f"{n} options; give {MIN_OPTIONS} to {MAX_OPTIONS}", field=f"{where}.options")
        for i, opt in enumerate(self.options):
            if not isinstance(opt, str) or not opt.strip():
                raise MedtuneError("must be a non-empty string", field=f"{where}.options[{i}]")
            if len(opt) > MAX_OPTION_CHARS:
                raise MedtuneError(f"is {len(opt)} characters; at most {MAX_OPTION_CHARS}",
                                   field=f"{where}.options[{i}]")
        if self.context is not None and len(self.context) > MAX_CONTEXT_CHARS:
            raise MedtuneError(f"is {len(self.context)} characters; at most {MAX_CONTEXT_CHARS}",
                               field=f"{where}.context")

    def to_item(self, index: int = 0) -> MCQItem:
        # text as given, so that a question scores exactly as in `medtune eval`; answer_index is a
        # placeholder (answering never reads the gold answer)
        return MCQItem(id=self.id or f"q{index}", question=self.question, options=tuple(self.options),
                       answer_index=0, context=self.context or None)


def read_questions(path: str) -> list[Question]:
    """Questions from a JSON file (a list, one object, or {"questions": [...]}) or JSONL; '-' is stdin."""
    raw = sys.stdin.read() if path == "-" else _read(path)
    where = "<stdin>" if path == "-" else path
    try:
        data = json.loads(raw)
        rows = data["questions"] if isinstance(data, dict) and "questions" in data else data
        rows = rows if isinstance(rows, list) else [rows]
        lines = [None] * len(rows)
    except json.JSONDecodeError:
        rows, lines = [], []
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise MedtuneError(f"not JSON: {err.msg} (column {err.colno})", path=where, line=n) from None
            lines.append(n)
    out = []
    for i, (row, line) in enumerate(zip(rows, lines)):
        if not isinstance(row, dict):
            raise MedtuneError("each question must be an object with question and options", path=where,
                               line=line, field=f"questions[{i}]")
        for key in ("question", "options"):
            if key not in row:
                raise MedtuneError("missing", path=where, line=line, field=f"questions[{i}].{key}")
        q = Question(question=row["question"], options=row["options"], context=row.get("context"),
                     id=str(row["id"]) if row.get("id") is not None else None)
        try:
            q.check(f"questions[{i}]")
        except MedtuneError as err:
            raise MedtuneError(err.message, path=where, line=line, field=err.field) from None
        out.append(q)
    if not out:
        raise MedtuneError("no questions found", path=where)
    return out


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MedtuneError("no such file", path=path) from None
    except UnicodeDecodeError as err:
        raise MedtuneError(f"not UTF-8 (byte {err.start})", path=path) from None


def format_answer(q: Question, result: dict, width: int = 30, reasoning_chars: int = 160) -> str:
    """A terminal rendering: the answer, then a bar per option (or, generating, the reply and the start of
    the reasoning, which --json prints whole)."""
    if is_generative(result.get("scorer")):
        return _format_generated(result, reasoning_chars)
    lines = [f"answer: {result['answer']}. {result['answer_text']}"]
    if result.get("abstain"):
        lines = [f"abstain: {result['abstain_reason']}; the model's pick would be {result['answer']}. "
                 f"{result['answer_text']}"]
    for j, opt in enumerate(q.options):
        letter = LETTERS[j]
        p = result["probabilities"][letter]
        mark = "▶" if letter == result["answer"] else " "
        lines.append(f" {mark} {letter}. {opt[:40]:<40} {'█' * round(p * width):<{width}} {p:6.1%}")
    if result.get("explanation"):
        lines.append(f"explanation: {result['explanation']}")
    return "\n".join(lines)


def _format_generated(result: dict, reasoning_chars: int) -> str:
    if result["answer"] is None:
        why = "the reply ran out of tokens" if result.get("truncated") else "no single option is stated"
        lines = [f"answer: none (could not read an answer: {why}; rule {result['extraction']})"]
    else:
        lines = [f"answer: {result['answer']}. {result['answer_text']} (read by rule {result['extraction']})"]
    reasoning = " ".join(result.get("reasoning", "").split())
    if reasoning:
        cut = reasoning[:reasoning_chars] + ("…" if len(reasoning) > reasoning_chars else "")
        lines.append(f"reasoning ({len(reasoning)} characters; all of it with --json): {cut}")
    lines.append("reply: " + ("\n       ".join(result.get("reply", "").splitlines()) or "(empty)"))
    return "\n".join(lines)
