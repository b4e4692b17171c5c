"""One batch of scoring requests through the model: left-padded contexts (continuing a shared prefix's
KV cache when there is one), then the rest of multi-token continuations on a copy of that cache.
Log-probabilities are gathered at the target tokens only (a float32 log-softmax per distinct position,
in chunks) and reach the host once per batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Request:
    """One question to score: its context tokens and one token list per option."""

    context: list[int]
    continuations: list[list[int]]

    @property
    def longest(self) -> int:
        """Tokens of the context and its longest continuation: what sorting, passes and cutting count."""
        return len(self.context) + max(map(len, self.continuations))


@dataclass
class Scores:
    """Per option: summed log-likelihood and its token count; whether the context was cut."""

    logliks: list[float]
    n_tokens: list[int]
    truncated: bool = False


def split_shared(req: Request) -> tuple[list[int], list[list[int]]]:
    """The longest prefix all continuations share (each keeps at least one token) and the rests."""
    conts = req.continuations
    limit = min(len(c) for c in conts) - 1
    n = 0
    while n < limit and all(c[n] == conts[0][n] for c in conts):
        n += 1
    return conts[0][:n], [c[n:] for c in conts]


def expand_cache(cache: Any, n: int) -> Any:
    """A batch-n view of a batch-1 KV cache. Layers that keep plain keys and values (transformers'
    dynamic layers) get `expand`ed views of the cached prefix, no copy: the model's first `cat` onto them
    materialises the batch once, where a repeat would copy it once more before that. Any other cache is
    copied and repeated. The prefix itself is never written to (each pass `cat`s into new tensors)."""
    import copy

    from transformers.cache_utils import DynamicLayer

    layers = vars(cache).get("layers")  # transformers' Cache keeps its per-layer caches here
    plain = DynamicLayer.batch_repeat_interleave
    if not layers or any(type(layer).batch_repeat_interleave is not plain for layer in layers):
        out = copy.deepcopy(cache)
        out.batch_repeat_interleave(n)
        return out
    out = copy.copy(cache)
    out.layers = [copy.copy(layer) for layer in layers]
    for layer in out.layers:
        if layer.get_seq_length() > 0:
            layer.keys = layer.keys.expand(n, *layer.keys.shape[1:])
            layer.values = layer.values.expand(n, *layer.values.shape[1:])
    return out


def _target_logprobs(logits: Any, rows: list[int], cols: list[int], toks: list[int],
                     chunk_elems: int = 1 << 24) -> Any:
    """log p(toks[k]) at logits[rows[k], cols[k]], gathered at the targets only: a float32 log-softmax of
    each distinct position, in chunks of at most `chunk_elems` values, never of [rows, positions, vocab]
    at once (the same per-row operation as before, so the same numbers). Stays on the device."""
    import torch

    dev = logits.device
    pairs: dict[tuple[int, int], int] = {}
    which = torch.tensor([pairs.setdefault((r, c), len(pairs)) for r, c in zip(rows, cols)], device=dev)
    target = torch.tensor(toks, device=dev)
    pr = torch.tensor([r for r, _ in pairs], device=dev)
    pc = torch.tensor([c for _, c in pairs], device=dev)
    step = max(1, chunk_elems // logits.shape[-1])
    out = torch.empty(len(toks), dtype=torch.float32, device=dev)
    for i in range(0, len(pairs), step):
        logp = torch.log_softmax(logits[pr[i:i + step], pc[i:i + step]].float(), dim=-1)
        mine = (which >= i) & (which < i + step)
        out[mine] = logp[which[mine] - i, target[mine]]
    return out


def score_batch(model: Any, batch: list[Request], max_length: int | None, pad_id: int,
                 device: str, prefix: tuple[int, Any] | None = None,
                 stats: dict | None = None) -> list[Scores]:
    """Score one batch; with `prefix` (its length and batch-1 KV cache) the contexts continue it.
    Log-probabilities are gathered at the target tokens only and reach the host once per batch."""
    import torch

    prefixes, rests, truncated = _cut(batch, max_length)
    B = len(batch)
    L = max(len(s) for s, _ in prefixes)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    for b, (seq, _) in enumerate(prefixes):
        ids[b, L - len(seq):] = torch.tensor(seq)
        mask[b, L - len(seq):] = 1
    P = prefix[0] if prefix else 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0) + P
    need_second = any(len(r) > 1 for rest in rests for r in rest)
    keep = max(n for _, n in prefixes) + 1
    if prefix:
        mask = torch.cat([torch.ones((B, P), dtype=torch.long), mask], dim=1)
    extra = {"past_key_values": expand_cache(prefix[1], B)} if prefix else {}
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device),
                use_cache=need_second or bool(prefix), logits_to_keep=keep, **extra)
    # (row, kept position, token) per scored token: shared-prefix tokens, then each option's first token
    rows, cols, toks, owner = [], [], [], []
    for b, ((seq, n_shared), rest) in enumerate(zip(prefixes, rests)):
        for j, t in enumerate(seq[len(seq) - n_shared:] if n_shared else []):
            rows.append(b), cols.append(keep - 1 - n_shared + j), toks.append(t), owner.append((b, None))
        for i, r in enumerate(rest):
            rows.append(b), cols.append(keep - 1), toks.append(r[0]), owner.append((b, i))
    parts = [_target_logprobs(out.logits[:, -keep:, :], rows, cols, toks)]
    processed = int(mask.sum()) - B * P
    if need_second:
        part, owners2, n2 = _second_pass(model, out.past_key_values, mask, prefixes, rests, P, pad_id, device)
        parts.append(part)
        owner += owners2
        processed += n2
    values = torch.cat(parts).tolist()  # the one device-to-host transfer of this batch
    shared_ll = [0.0] * B
    option_ll = [[0.0] * len(rest) for rest in rests]
    for (b, i), v in zip(owner, values):
        if i is None:
            shared_ll[b] += v
        else:
            option_ll[b][i] += v
    if stats is not None:
        stats["processed"] = stats.get("processed", 0) + processed
        stats["padded"] = stats.get("padded", 0) + B * L
    return [Scores([shared_ll[b] + ll for ll in option_ll[b]], [n_shared + len(r) for r in rests[b]], truncated[b])
            for b, (_, n_shared) in enumerate(prefixes)]


def _cut(batch: list[Request], max_length: int | None) -> tuple[list[tuple[list[int], int]], list, list[bool]]:
    """Per request: the sequence to run (context + shared continuation prefix, cut from the left to fit
    max_length) with its shared-prefix length, the continuations' rests, and whether it was cut."""
    prefixes, rests, truncated = [], [], []
    for req in batch:
        shared, rest = split_shared(req)
        seq = req.context + shared
        cut = False
        if max_length is not None:
            room = max_length - max(len(r) for r in rest)
            if room < len(shared) + 1:
                raise ValueError(f"an option is longer than max_length={max_length} tokens")
            if len(seq) > room:
                seq, cut = seq[-room:], True
        prefixes.append((seq, len(shared)))
        rests.append(rest)
        truncated.append(cut)
    return prefixes, rests, truncated


def _second_pass(model: Any, cache: Any, mask: Any, prefixes: list, rests: list, P: int, pad_id: int,
                 device: str) -> tuple[Any, list[tuple[int, int]], int]:
    """The remaining tokens of multi-token continuations, on a copy of the context's KV cache: their
    log-probabilities (on the device), which option each belongs to, and the tokens run."""
    import torch

    rows = [(b, i) for b, rest in enumerate(rests) for i, r in enumerate(rest) if len(r) > 1]
    cache.reorder_cache(torch.tensor([b for b, _ in rows], device=device))
    M = max(len(rests[b][i]) - 1 for b, i in rows)
    ids2 = torch.full((len(rows), M), pad_id, dtype=torch.long)
    mask2 = torch.zeros((len(rows), M), dtype=torch.long)
    for r, (b, i) in enumerate(rows):
        toks = rests[b][i][:-1]
        ids2[r, :len(toks)] = torch.tensor(toks)
        mask2[r, :len(toks)] = 1
    full_mask = torch.cat([mask[[b for b, _ in rows]], mask2], dim=1)
    start = torch.tensor([P + len(prefixes[b][0]) for b, _ in rows]).unsqueeze(1)
    pos2 = start + torch.arange(M).unsqueeze(0)
    out2 = model(input_ids=ids2.to(device), attention_mask=full_mask.to(device),
                 position_ids=pos2.to(device), past_key_values=cache, use_cache=True)
    r_idx, j_idx, t_idx, owner = [], [], [], []
    for r, (b, i) in enumerate(rows):
        toks = rests[b][i]
        for j in range(len(toks) - 1):
            r_idx.append(r), j_idx.append(j), t_idx.append(toks[j + 1]), owner.append((b, i))
    return _target_logprobs(out2.logits, r_idx, j_idx, t_idx), owner, int(mask2.sum())
