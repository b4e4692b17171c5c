"""Training examples for causal LMs: prompt tokens masked, answer tokens learned.

The answer is tokenized exactly as the scorers tokenize it (lm-eval's context/continuation rule),
so the tokens the model learns are the tokens `medtune eval` reads.
"""

from __future__ import annotations

from typing import Any, Sequence

from medtune.data.prompts import render
from medtune.data.schema import MCQItem
from medtune.eval.scoring import continuation_text, encode_pair

IGNORE = -100


def build_example(item: MCQItem, tokenizer: Any, template: str, target: str, max_length: int,
                  loss_on: str = "answer") -> dict[str, list[int]]:
    """input_ids and labels for one question (labels -100 on the prompt unless loss_on='all')."""
    p = render(item, template, tokenizer, target=target)
    ctx, answer = encode_pair(tokenizer, p.prompt, continuation_text(p.prompt, p.target))
    answer = answer + [tokenizer.eos_token_id]
    if len(answer) > max_length // 2:  # a long explanation is cut, the letter never
        answer = answer[: max_length // 2 - 1] + [tokenizer.eos_token_id]
    ctx = ctx[-(max_length - len(answer)):]
    labels = ([IGNORE] * len(ctx) if loss_on == "answer" else list(ctx)) + answer
    return {"input_ids": ctx + answer, "labels": labels}


def build_examples(items: Sequence[MCQItem], tokenizer: Any, template: str, target: str, max_length: int,
                   loss_on: str = "answer") -> list[dict[str, list[int]]]:
    """One example per question."""
    return [build_example(it, tokenizer, template, target, max_length, loss_on) for it in items]


class PadCollator:
    """Right-pads a batch to a multiple of 8: pad token in inputs, -100 in labels, a 0/1 mask."""

    def __init__(self, pad_id: int, multiple: int = 8):
        self.pad_id = pad_id
        self.multiple = multiple

    def __call__(self, features: list[dict]) -> dict:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        width = -(-longest // self.multiple) * self.multiple
        ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
