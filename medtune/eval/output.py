"""What every scorer returns (`ScorerOutput`) and the settings only some scorers read (`ScorerOptions`).

A module of its own so that scorer modules (loglik, choice, generate) import the contract without
importing the registry that names them (`medtune.eval.scorers`); see that module for each field.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ScorerOutput:
    """What a scorer gives back (see the module docstring for each field)."""

    scores: dict[str, list[list[float]]]
    truncated: int = 0
    predicted: dict[str, list[int | None]] | None = None
    rows: list[dict] | None = None
    extra: dict | None = None
    tokens: dict[str, int] | None = None


@dataclass(frozen=True)
class ScorerOptions:
    """Scorer settings that only some scorers read (the generative scorer's, for now)."""

    max_new_tokens: int = 256
    thinking: bool = False
