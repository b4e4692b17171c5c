"""Option log-likelihoods, computed exactly by lm-evaluation-harness's rule, batched.

lm-eval scores a (context, continuation) pair as follows: trailing whitespace of the context moves
to the front of the continuation; the continuation's tokens are `enc(context + continuation)`
minus the first `len(enc(context))` tokens; the score is the sum of their log-probabilities given
everything before them. Both scorers are that rule with different continuations:

- `letter`: continuations are the option letters (" A", " B", ...), one forward pass per question;
- `cloze`: continuations are the option texts; reported as the sum (lm-eval `acc`), the sum per
  character (lm-eval `acc_norm`) and the mean per token.

Speed without changing a number: the prefix every question's context shares (the chat template's
system turn and the instruction, about half of a MedMCQA prompt) runs once for the whole set and
its KV cache is reused by every batch; each question's context then runs once (left-padded batches,
sorted by length), extended by whatever prefix all its continuations share; only the remaining
tokens of multi-token continuations run again, on a copy of the context's KV cache. Batches hold a
budget of tokens rather than a fixed number of questions (`passes`): long questions go fewer to a
pass, short ones more, so little of a pass is padding and every pass is about the same size.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from medtune.eval.batch import Request, Scores, score_batch


def continuation_text(context: str, choice: str) -> str:
    """lm-eval's target delimiter: a space before the choice unless the context ends in whitespace."""
    return choice if context[-1:].isspace() else " " + choice


def move_spaces(context: str, continuation: str) -> tuple[str, str]:
    """lm-eval's first step: whitespace at the end of the context moves to the start of the continuation."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def finish_pair(tokenizer: Any, ctx: list[int], whole: list[int]) -> tuple[list[int], list[int]]:
    """lm-eval's rule once the context and context + continuation are tokenized: bos where the tokenizer
    adds one, an empty context conditioned on the prefix token, the continuation as the whole minus the
    context."""
    bos = tokenizer.bos_token_id
    if getattr(tokenizer, "add_bos_token", False) and bos is not None and (not ctx or ctx[0] != bos):
        ctx, whole = [bos] + ctx, [bos] + whole
    if not ctx:
        return [bos if bos is not None else tokenizer.eos_token_id], whole
    return ctx, whole[len(ctx):]


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Context and continuation token ids by lm-eval's rule (whitespace moved, whole minus context)."""
    context, continuation = move_spaces(context, continuation)
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    return finish_pair(tokenizer, ctx, whole)


def build_request(tokenizer: Any, context: str, choices: Sequence[str]) -> Request:
    """A Request for one context and its choices (letters or option texts)."""
    pairs = [encode_pair(tokenizer, context, continuation_text(context, c)) for c in choices]
    ctx = pairs[0][0]
    conts = [p[1] for p in pairs]
    for i, c in enumerate(conts):
        if not c:
            raise ValueError(f"choice {choices[i]!r} encodes to no tokens")
    return Request(ctx, conts)


MIN_SHARED_PREFIX = 8  # tokens; below this a shared prefix is not worth a cache


def common_prefix(requests: Sequence[Request], max_length: int | None = None) -> list[int]:
    """The token prefix all contexts share, leaving each at least one token of its own; empty when it is
    short or when a context would be cut to max_length (cutting happens from the left)."""
    if len(requests) < 2:
        return []
    first = requests[0].context
    n = min(len(r.context) for r in requests) - 1
    for r in requests[1:]:
        ctx = r.context
        k = 0
        while k < n and ctx[k] == first[k]:
            k += 1
        n = k
        if n < MIN_SHARED_PREFIX:
            return []
    if max_length is not None and any(r.longest > max_length for r in requests):
        return []
    return first[:n]


def _longest_first(requests: Sequence[Request]) -> list[int]:
    return sorted(range(len(requests)), key=lambda i: -requests[i].longest)


MAX_PASS_FACTOR = 4  # a pass holds at most this many times batch_size questions


def passes(requests: Sequence[Request], order: Sequence[int], batch_size: int, skip: int = 0) -> list[list[int]]:
    """Consecutive runs of `order` (longest first) to score in one forward pass each: as many questions
    as fit in a budget of `batch_size` x the median question's tokens (counted after the `skip` tokens
    of a reused prefix, padding included), at least one and at most MAX_PASS_FACTOR x batch_size.
    A batch of fixed size pads every question to its batch's longest: on the demo's 500 questions 7% of
    the tokens at 16 a pass (and at 8 a pass for either half under two processes), 1-2% this way."""
    if not order:
        return []
    length = {i: max(1, requests[i].longest - skip) for i in order}
    ranked = sorted(length.values())
    budget = batch_size * ranked[len(ranked) // 2]
    out, start = [], 0
    while start < len(order):
        n = min(MAX_PASS_FACTOR * batch_size, max(1, budget // length[order[start]]))
        out.append(list(order[start:start + n]))
        start += n
    return out


def share(requests: Sequence[Request], rank: int, world: int) -> list[int]:
    """The indices process `rank` of `world` scores: every world-th of the longest-first order, so each
    process gets the same number of questions (±1) and about the same number of tokens."""
    return _longest_first(requests)[rank::world]


def score_requests(model: Any, requests: Sequence[Request], *, batch_size: int = 8,
                   max_length: int | None = None, pad_id: int = 0, device: str = "cpu",
                   progress: Any = None, reuse_prefix: bool = True,
                   processes: tuple[int, int] = (0, 1), stats: dict | None = None) -> list[Scores]:
    """Score every request; results come back in the order given. `reuse_prefix=False` recomputes the
    shared prefix in every batch (same numbers up to float rounding; kept for comparison).

    `processes=(rank, world)` with world > 1 (see `medtune.backend.processes`): every process of an
    `accelerate launch`/`torchrun` group calls this with the same requests, scores its `share`, and all
    of them get every result back (accelerate's `gather_object`).

    `stats`, when given, is filled with what ran through the model in this process: "processed" tokens
    (the shared prefix once, no padding) and "padded" (positions including padding)."""
    rank, world = processes
    if world > 1:
        from accelerate.utils import gather_object

        mine = share(requests, rank, world)
        got = score_requests(model, [requests[i] for i in mine], batch_size=batch_size, max_length=max_length,
                             pad_id=pad_id, device=device, progress=progress, reuse_prefix=reuse_prefix,
                             stats=stats)
        merged: list[Scores | None] = [None] * len(requests)
        for i, s in gather_object(list(zip(mine, got))):
            merged[i] = s
        return merged  # type: ignore[return-value]

    import torch

    shared = common_prefix(requests, max_length) if reuse_prefix else []
    order = _longest_first(requests)
    results: list[Scores | None] = [None] * len(requests)
    with torch.inference_mode():
        prefix = None
        if shared:
            out = model(input_ids=torch.tensor([shared], device=device), use_cache=True, logits_to_keep=1)
            prefix = (len(shared), out.past_key_values)
            if stats is not None:
                stats["processed"] = stats.get("processed", 0) + len(shared)
                stats["padded"] = stats.get("padded", 0) + len(shared)
        for idx in passes(requests, order, batch_size, len(shared)):
            batch = [requests[i] for i in idx]
            if prefix is not None:
                batch = [Request(r.context[prefix[0]:], r.continuations) for r in batch]
            for i, s in zip(idx, score_batch(model, batch, max_length, pad_id, device, prefix, stats)):
                results[i] = s
            if progress is not None:
                progress.update(len(idx))
    return results  # type: ignore[return-value]


def softmax(values: Sequence[float]) -> list[float]:
    """Probabilities from scores, computed stably."""
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]
