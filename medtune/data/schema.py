"""MCQItem: the one record type every loader produces and every scorer consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LETTERS = "ABCDEFGHIJ"
MIN_OPTIONS, MAX_OPTIONS = 2, 10


@dataclass(frozen=True, slots=True)
class MCQItem:
    """One multiple-choice question with its gold answer."""

    id: str
    question: str
    options: tuple[str, ...]
    answer_index: int
    subject: str | None = None
    topic: str | None = None
    explanation: str | None = None
    context: str | None = None
    source: str | None = None
    split: str | None = None  # the split the source itself assigns (PubMedQA's official test), if any
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __reduce__(self) -> tuple:
        # pickled (to worker processes) as the constructor's arguments: 3x faster both ways than
        # dataclasses' per-field state
        return (MCQItem, (self.id, self.question, self.options, self.answer_index, self.subject, self.topic,
                          self.explanation, self.context, self.source, self.split, self.meta))

    @property
    def answer_letter(self) -> str:
        """The gold answer as a letter (A, B, ...)."""
        return LETTERS[self.answer_index]

    @property
    def answer_text(self) -> str:
        """The gold option's text."""
        return self.options[self.answer_index]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict in medtune's own record format (the `medtune` format)."""
        d = {"id": self.id, "question": self.question, "options": list(self.options),
             "answer_index": self.answer_index, "subject": self.subject, "topic": self.topic,
             "explanation": self.explanation, "context": self.context, "source": self.source,
             "split": self.split}
        if self.meta:
            d["meta"] = dict(self.meta)
        return d
