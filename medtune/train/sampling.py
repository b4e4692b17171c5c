"""The order training examples are read in: every optimizer step holds each answer letter equally often.

A model that cannot yet tell the answers apart predicts the letters nearly uniformly, and its argmax is
then decided by a small letter bias. With random batches of 8 four-option questions, a step's gold
letters are far from balanced (45% of steps hold one letter 4 or more times, 4% hold each exactly
twice), and Adam turns that noise into full-size updates toward whichever letters the last steps
happened to hold. Balanced steps remove that noise; they do not by themselves keep a model that learns
little from settling on one letter (the demo's sweep in benchmarks/NOTES.md). `LetterBalancedSampler` takes the
examples in a random order, interleaves them over their letters in proportion (A, B, C, D, A, ... when the
letters are even), each letter's queue sorted by length when lengths are given, and cuts steps from that
sequence: every step holds the letters as the whole training set does, and its micro-batches hold
examples of similar length (as `group_by_length` does). The steps are then read in a random order.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import Sampler


def deal(indices: Sequence[int], letters: Sequence[int], lengths: Sequence[int] | None) -> list[int]:
    """The indices interleaved over their letters in proportion (the j-th of a letter's n examples at
    (j + 1/2) / n along the sequence), each letter's queue longest first when lengths are given: any run
    of the sequence holds the letters as the whole does, and neighbours have similar lengths."""
    queues: dict[int, list[int]] = {}
    for i in indices:
        queues.setdefault(letters[i], []).append(i)
    if lengths is not None:
        for q in queues.values():
            q.sort(key=lambda i: -lengths[i])  # stable: equal lengths keep their random order
    keyed = [((j + 0.5) / len(q), letter, i) for letter, q in queues.items() for j, i in enumerate(q)]
    return [i for _, _, i in sorted(keyed)]


class LetterBalancedSampler(Sampler):
    """Indices in steps of `step` examples, each step balanced over the gold letters (see the module)."""

    def __init__(self, letters: Sequence[int], step: int, lengths: Sequence[int] | None = None,
                 generator: torch.Generator | None = None):
        self.letters, self.step, self.lengths = list(letters), max(1, step), lengths
        self.generator = generator

    def __len__(self) -> int:
        return len(self.letters)

    def __iter__(self) -> Iterator[int]:
        perm = torch.randperm(len(self.letters), generator=self.generator).tolist()
        dealt = deal(perm, self.letters, self.lengths)
        steps = [dealt[i:i + self.step] for i in range(0, len(dealt), self.step)]
        return iter([i for j in torch.randperm(len(steps), generator=self.generator).tolist() for i in steps[j]])


def length_grouping(grouped: bool) -> dict[str, Any]:
    """TrainingArguments' switch for length-grouped batches: `train_sampling_strategy` from transformers 5.2,
    `group_by_length` in 5.0 and 5.1 (the declared floor)."""
    from transformers import TrainingArguments

    if "train_sampling_strategy" in TrainingArguments.__dataclass_fields__:
        return {"train_sampling_strategy": "group_by_length" if grouped else "random"}
    return {"group_by_length": grouped}


def grouped_by_length(args: Any) -> bool:
    """Whether TrainingArguments (or TRL's config built on them) ask for length-grouped batches, on any 5.x."""
    fields = vars(args)  # transformers' dataclass, whose fields differ by release (not a medtune setting)
    return fields.get("train_sampling_strategy") == "group_by_length" or fields.get("group_by_length") is True
