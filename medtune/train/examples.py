"""Training examples for causal LMs: prompt tokens masked, answer tokens learned.

The answer is tokenized exactly as the scorers tokenize it (lm-eval's context/continuation rule, the
same as `medtune.eval.scoring.encode_pair`), so the tokens the model learns are the tokens
`medtune eval` reads. Examples are tokenized 1,024 questions at a time, each context once
(`medtune.train.tokenize.split_encode`), and held as flat arrays (`TokenizedExamples`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from medtune.data.prompts import load_template, render, resolve_template
from medtune.data.schema import MCQItem
from medtune.eval.scoring import continuation_text, encode_pair, finish_pair, move_spaces
from medtune.train.tokenize import IGNORE

if TYPE_CHECKING:
    from medtune.train.tokenize import TokenizedExamples

CHUNK = 1024


def _assemble(ctx: list[int], answer: list[int], eos: int, max_length: int, loss_on: str) -> dict[str, list[int]]:
    answer = answer + [eos]
    if len(answer) > max_length // 2:  # a long explanation is cut, the letter never
        answer = answer[: max_length // 2 - 1] + [eos]
    ctx = ctx[-(max_length - len(answer)):]
    labels = ([IGNORE] * len(ctx) if loss_on == "answer" else list(ctx)) + answer
    return {"input_ids": ctx + answer, "labels": labels}


def build_example(item: MCQItem, tokenizer: Any, template: str, target: str, max_length: int,
                  loss_on: str = "answer") -> dict[str, list[int]]:
    """input_ids and labels for one question (labels -100 on the prompt unless loss_on='all')."""
    p = render(item, template, tokenizer, target=target)
    ctx, answer = encode_pair(tokenizer, p.prompt, continuation_text(p.prompt, p.target))
    return _assemble(ctx, answer, tokenizer.eos_token_id, max_length, loss_on)


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """`encode_pair` for many (context, continuation) pairs: each context's text up to its last added token
    (the chat template's fixed part and the question) is tokenized once, and only the short tail after it
    twice, since a tokenizer splits its text at added tokens before anything else. A sample of pairs is
    checked against the two-call rule; on any difference every pair takes that rule."""
    from medtune.train.tokenize import split_encode

    moved = [move_spaces(c, k) for c, k in pairs]
    fast = split_encode(tokenizer, moved)
    if fast is not None:
        sample = range(0, len(moved), max(1, len(moved) // 8))
        reference = _encode_moved(tokenizer, [moved[i] for i in sample])
        if all(fast[i] == ref for i, ref in zip(sample, reference)):
            return fast
    return _encode_moved(tokenizer, moved)


def _encode_moved(tokenizer: Any, moved: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """lm-eval's rule with two batched tokenizer calls: context alone, and context + continuation."""
    ctx_ids = tokenizer([c for c, _ in moved], add_special_tokens=False)["input_ids"]
    whole_ids = tokenizer([c + k for c, k in moved], add_special_tokens=False)["input_ids"]
    return [finish_pair(tokenizer, ctx, whole) for ctx, whole in zip(ctx_ids, whole_ids)]


def build_examples(items: Sequence[MCQItem], tokenizer: Any, template: str, target: str, max_length: int,
                   loss_on: str = "answer") -> "TokenizedExamples":
    """One example per question, tokenized in batches, held as flat arrays."""
    from medtune.train.tokenize import TokenizedExamples

    tmpl = load_template(resolve_template(template, tokenizer)) if isinstance(template, str) else template
    out = TokenizedExamples.builder(len(tokenizer))
    for start in range(0, len(items), CHUNK):
        prompts = [render(it, tmpl, tokenizer, target=target) for it in items[start:start + CHUNK]]
        pairs = encode_pairs(tokenizer, [(p.prompt, continuation_text(p.prompt, p.target)) for p in prompts])
        for c, a in pairs:
            ex = _assemble(c, a, tokenizer.eos_token_id, max_length, loss_on)
            out.add(ex["input_ids"], ex["labels"])
    return out.finish()


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


def pack_collator() -> Any:
    """Padding-free packing, transformers' DataCollatorWithFlattening: one row of concatenated examples,
    `position_ids` restarting at 0 for each (transformers reads example boundaries from them:
    flash-attention varlen, or a document mask for flex/sdpa), labels -100 on each example's first token
    so no example learns from the one before."""
    from transformers import DataCollatorWithFlattening

    return DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)
