"""Encoders with a multiple-choice head (AutoModelForMultipleChoice, e.g. the embedded MiniLM):
each option is encoded with its question, the head gives one logit per option.

Questions may have 2 to 10 options: a batch is padded to its widest question with empty choices
that are masked out of the softmax, so the probabilities cover the real options only.
"""

from __future__ import annotations

from typing import Any, Sequence

from medtune.data.schema import MCQItem
from medtune.eval.output import ScorerOptions, ScorerOutput


def encode_item(item: MCQItem, tokenizer: Any, max_length: int) -> dict[str, Any]:
    """Token ids per option: [CLS] context + question [SEP] option [SEP] (question cut first)."""
    first = (f"{item.context}\n" if item.context else "") + item.question
    enc = tokenizer([first] * len(item.options), list(item.options), truncation="only_first",
                    max_length=max_length)
    out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": item.answer_index}
    if "token_type_ids" in enc:
        out["token_type_ids"] = enc["token_type_ids"]
    return out


class ChoiceCollator:
    """Pads options to the widest question and tokens to the longest option; adds a choice mask."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        B = len(features)
        C = max(len(f["input_ids"]) for f in features)
        L = max(len(ids) for f in features for ids in f["input_ids"])
        batch = {"input_ids": torch.full((B, C, L), self.pad_id, dtype=torch.long),
                 "attention_mask": torch.zeros((B, C, L), dtype=torch.long),
                 "choice_mask": torch.zeros((B, C), dtype=torch.bool),
                 "labels": torch.tensor([f["labels"] for f in features], dtype=torch.long)}
        has_types = "token_type_ids" in features[0]
        if has_types:
            batch["token_type_ids"] = torch.zeros((B, C, L), dtype=torch.long)
        for b, f in enumerate(features):
            for c, ids in enumerate(f["input_ids"]):
                batch["input_ids"][b, c, : len(ids)] = torch.tensor(ids)
                batch["attention_mask"][b, c, : len(ids)] = 1
                if has_types:
                    batch["token_type_ids"][b, c, : len(ids)] = torch.tensor(f["token_type_ids"][c])
            batch["choice_mask"][b, : len(f["input_ids"])] = True
            batch["attention_mask"][b, len(f["input_ids"]):, 0] = 1  # empty choices: one token, masked later
        return batch


def choice_logits(model: Any, batch: dict) -> Any:
    """Per-option logits with padded (empty) options at -inf."""
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "choice_mask")}
    logits = model(**inputs).logits
    return logits.masked_fill(~batch["choice_mask"].to(logits.device), float("-inf"))


def score_items_mc(model: Any, tokenizer: Any, items: Sequence[MCQItem], *, batch_size: int, device: str,
                   max_length: int = 256, progress: Any = None) -> list[list[float]]:
    """Per question, the option logits (log-softmax gives the model's option probabilities)."""
    import torch

    collate = ChoiceCollator(tokenizer.pad_token_id)
    order = sorted(range(len(items)), key=lambda i: -len(items[i].question))
    out: list[list[float] | None] = [None] * len(items)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = collate([encode_item(items[i], tokenizer, max_length) for i in idx])
            logits = choice_logits(model, {k: v.to(device) for k, v in batch.items()}).float()
            logp = torch.log_softmax(logits, dim=-1)
            for row, i in enumerate(idx):
                out[i] = logp[row, : len(items[i].options)].tolist()
            if progress is not None:
                progress.update(len(idx))
    return out  # type: ignore[return-value]


def is_multiple_choice(model: Any) -> bool:
    """Whether a (possibly wrapped) model has a multiple-choice head."""
    base = getattr(model, "base_model", model)
    inner = base.model if hasattr(base, "model") else base
    names = {type(model).__name__, type(base).__name__, type(inner).__name__}
    return any(n.endswith("ForMultipleChoice") for n in names)


def score_choice(model: Any, tokenizer: Any, items: Sequence[MCQItem], template: Any = None, *, batch_size: int,
                 device: str, max_length: int | None = None, progress: Any = None,
                 processes: tuple[int, int] = (0, 1), options: ScorerOptions | None = None) -> ScorerOutput:
    """The `choice` scorer: an encoder's option logits (no template; the whole set in this process)."""
    return ScorerOutput({"choice": score_items_mc(model, tokenizer, items, batch_size=batch_size, device=device,
                                                  progress=progress)})
