"""SCORERS: every way medtune turns a model's output into an answer, one entry each.

A scorer is a function `fn(model, tokenizer, items, template, *, batch_size, device, max_length,
progress, processes, options) -> ScorerOutput`; evaluation code looks the scorer up by name here and
never branches on it. Adding a scorer is one `Scorer(...)` entry in `SCORERS`. `progress` reaches the function as None or a bar to `update(n)` per question scored.

The contract every scorer returns (`ScorerOutput`, defined in `medtune.eval.output`):
- `scores`: per result name (e.g. "letter"; "cloze", "cloze_norm", "cloze_mean"), per question, one
  score per option (log-likelihoods, logits or any monotone score; softmax gives the probabilities);
- `predicted`: per result name, per question, the chosen option index, or None when no answer could be
  read (counted wrong, never defaulted to a letter). When given it overrides the argmax of `scores`;
- `rows`: per question, extra fields for predictions.jsonl (e.g. the raw generation);
- `extra`: extra fields for metrics.json (e.g. {"unparseable": 3, "unparseable_rate": 0.15});
- `truncated`: how many contexts were cut to fit the model;
- `tokens`: {"processed": tokens run through the model (a shared prefix once),
  "questions": the questions' own tokens}, when the scorer counts them.

The generative scorer lives in `medtune.eval.generate.score_generate(model, tokenizer, items,
template, *, batch_size, device, progress, max_new_tokens, thinking, processes) -> ScorerOutput`, imported only
when `--scorer generate` is asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from medtune.data.schema import MCQItem
from medtune.errors import MedtuneError, did_you_mean
from medtune.eval.output import ScorerOptions, ScorerOutput


ScoreFn = Callable[..., ScorerOutput]


@dataclass(frozen=True)
class Scorer:
    """One scorer: its name, the result names it reports, its function as "module:function" (imported on
    first use, so scorer modules import this contract and this registry imports none of them), and
    whether users pick it."""

    name: str
    results: tuple[str, ...]
    target: str
    user_facing: bool = True
    generative: bool = False  # the model writes its answer (read by the extractor), no option scores
    cloze: bool = False  # the prompt lists no letters: each option's text is the continuation
    in_training: bool = False  # usable as train.eval_scorer (a log-likelihood scorer of a causal LM)
    encoder: bool = False  # the scorer of encoders with a multiple-choice head (chosen by the model, not a user)
    help: str = ""

    def load(self) -> ScoreFn:
        """The scoring function."""
        module, _, fn = self.target.partition(":")
        return getattr(importlib.import_module(module), fn)

    def run(self, model: Any, tokenizer: Any, items: Sequence[MCQItem], template: Any, *, batch_size: int,
            device: str, max_length: int | None = None, progress: Any = None,
            processes: tuple[int, int] = (0, 1), options: ScorerOptions | None = None) -> ScorerOutput:
        """Score the items and check the output names the results this scorer declares. `progress` is a
        bar (anything with update(n)) or a bool: True shows a tqdm bar on the first process."""
        bar = _bar(progress, self.name, len(items), processes) if isinstance(progress, bool) else progress
        try:
            out = self.load()(model, tokenizer, items, template, batch_size=batch_size, device=device,
                              max_length=max_length, progress=bar, processes=processes,
                              options=options or ScorerOptions())
        finally:
            if bar is not progress:
                bar.close()
        missing = [r for r in self.results if r not in out.scores]
        if missing:
            raise RuntimeError(f"scorer {self.name!r} returned no {', '.join(missing)} scores")
        return out


def _bar(show: bool, name: str, n: int, processes: tuple[int, int]) -> Any:
    import sys

    from tqdm.auto import tqdm

    rank, world = processes
    desc = f"scoring ({name})" + (f" · process 1 of {world}" if world > 1 else "")
    return tqdm(total=-(-n // world), desc=desc, unit="q", disable=not show or rank != 0 or None, file=sys.stderr)


def run_generate(model: Any, tokenizer: Any, items: Sequence[MCQItem], template: Any, *, batch_size: int,
                 device: str, max_length: int | None = None, progress: Any = None,
                 processes: tuple[int, int] = (0, 1), options: ScorerOptions) -> ScorerOutput:
    """The `generate` entry: medtune.eval.generate.score_generate with the generation options."""
    score_generate = getattr(importlib.import_module("medtune.eval.generate"), "score_generate")
    return score_generate(model, tokenizer, items, template, batch_size=batch_size, device=device,
                          progress=progress, max_new_tokens=options.max_new_tokens, thinking=options.thinking,
                          processes=processes)


SCORERS: dict[str, Scorer] = {s.name: s for s in (
    Scorer("letter", ("letter",), "medtune.eval.loglik:score_letter", in_training=True,
           help="log-likelihood of each option's letter after the question (one forward pass)"),
    Scorer("cloze", ("cloze", "cloze_norm", "cloze_mean"), "medtune.eval.loglik:score_cloze", cloze=True,
           in_training=True, help="log-likelihood of each option's text (lm-eval acc; per character: acc_norm)"),
    Scorer("choice", ("choice",), "medtune.eval.choice:score_choice", user_facing=False, encoder=True,
           help="an encoder's multiple-choice head (chosen by medtune for such models)"),
    Scorer("generate", ("generate",), "medtune.eval.scorers:run_generate", generative=True,
           help="greedy generation, then the answer read from the text (unparseable counts wrong)"),
)}


def user_scorers() -> tuple[str, ...]:
    """The scorer names a user may ask for."""
    return tuple(n for n, s in SCORERS.items() if s.user_facing)


def training_scorers() -> tuple[str, ...]:
    """The scorer names train.eval_scorer may take."""
    return tuple(n for n, s in SCORERS.items() if s.in_training)


def encoder_scorer() -> Scorer:
    """The scorer of an encoder with a multiple-choice head."""
    return next(s for s in SCORERS.values() if s.encoder)


def scorer_for(name: str, encoder: bool) -> Scorer:
    """The scorer a model uses: an encoder's own, else the named one."""
    return encoder_scorer() if encoder else get_scorer(name)


def is_generative(name: str | None) -> bool:
    """Whether the named scorer writes its answer (False for no name or an unknown one)."""
    return name in SCORERS and SCORERS[name].generative


def get_scorer(name: str) -> Scorer:
    """The registered scorer of this name (a one-line error with a suggestion otherwise)."""
    if name not in SCORERS:
        names = user_scorers()
        raise MedtuneError(f"unknown scorer {name!r}{did_you_mean(name, names)}; choose from "
                           f"{', '.join(names)}", field="--scorer")
    return SCORERS[name]
