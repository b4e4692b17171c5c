"""The log-likelihood scorers (`letter`, `cloze`): render each question with the template, build
lm-eval's (context, continuation) requests and score them in batches (medtune.eval.scoring)."""

from __future__ import annotations

from typing import Any, Sequence

from medtune.data.schema import MCQItem
from medtune.eval.output import ScorerOptions, ScorerOutput


def _score(model: Any, tokenizer: Any, items: Sequence[MCQItem], template: Any, *, cloze: bool, batch_size: int,
           device: str, max_length: int | None, progress: Any, processes: tuple[int, int]) -> tuple[list, list, dict]:
    """Scores per question, the rendered prompts, and the token counts."""
    from medtune.data.prompts import render
    from medtune.eval.scoring import build_request, score_requests

    rendered = [render(it, template, tokenizer, cloze=cloze) for it in items]
    requests = [build_request(tokenizer, p.prompt, p.choices) for p in rendered]
    stats: dict = {}
    scores = score_requests(model, requests, batch_size=batch_size, max_length=max_length,
                            pad_id=tokenizer.pad_token_id, device=device, progress=progress,
                            processes=processes, stats=stats)
    stats["questions"] = sum(len(r.context) + sum(map(len, r.continuations)) for r in requests)
    return scores, rendered, stats


def score_letter(model: Any, tokenizer: Any, items: Sequence[MCQItem], template: Any, *, batch_size: int,
                 device: str, max_length: int | None = None, progress: Any = None,
                 processes: tuple[int, int] = (0, 1), options: ScorerOptions | None = None) -> ScorerOutput:
    """The `letter` scorer: each option's continuation (its letter, or its text where the template
    scores texts, as lm-eval's PubMedQA does) after the whole question."""
    scores, _, stats = _score(model, tokenizer, items, template, cloze=False, batch_size=batch_size,
                              device=device, max_length=max_length, progress=progress, processes=processes)
    return ScorerOutput({"letter": [s.logliks for s in scores]}, truncated=sum(s.truncated for s in scores),
                        tokens=stats)


def score_cloze(model: Any, tokenizer: Any, items: Sequence[MCQItem], template: Any, *, batch_size: int,
                device: str, max_length: int | None = None, progress: Any = None,
                processes: tuple[int, int] = (0, 1), options: ScorerOptions | None = None) -> ScorerOutput:
    """The `cloze` scorer: each option's text after the question without the options; summed
    (lm-eval acc), per character (acc_norm) and per token."""
    scores, rendered, stats = _score(model, tokenizer, items, template, cloze=True, batch_size=batch_size,
                                     device=device, max_length=max_length, progress=progress,
                                     processes=processes)
    return ScorerOutput({
        "cloze": [s.logliks for s in scores],
        "cloze_norm": [[ll / max(1, len(c)) for ll, c in zip(s.logliks, p.choices)] for s, p in zip(scores, rendered)],
        "cloze_mean": [[ll / n for ll, n in zip(s.logliks, s.n_tokens)] for s in scores],
    }, truncated=sum(s.truncated for s in scores), tokens=stats)
