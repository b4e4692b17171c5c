"""The questions a run uses: training, selection (cut from the training side) and the reported eval set;
option-order shuffling for training; tokenized examples, cached by content.

The reported eval set is scored twice only, before and after training. Checkpoint selection and early
stopping (`train.eval_steps`) read a separate selection set cut from the training questions by the same
stable hash split, so the reported gain is not biased by choosing on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from medtune.data.schema import MCQItem

if TYPE_CHECKING:
    from medtune.train.recipe import Recipe

# options whose meaning depends on their place or on the other options: such questions keep their order
_POSITIONAL = re.compile(r"\b(all|none|both|neither) of (the )?(above|these|them)\b|\b(both|only|either) "
                         r"\(?[a-e]\)? (and|or|&) \(?[a-e]\)?\b|\b[a-e] and [a-e]\b|\ball the above\b", re.I)


@dataclass
class Questions:
    """The run's questions on each side and how they were cut."""

    train: list[MCQItem]
    evals: list[MCQItem]
    report: Any
    info: dict
    selection: list[MCQItem] = field(default_factory=list)


def load_questions(recipe: Recipe) -> Questions:
    """The run's questions, the one loader: training, selection and eval questions from separate eval
    sources or a stable hash split of the training sources; a selection set cut from the training side
    when the recipe selects checkpoints; training options shuffled when `data.shuffle_options`."""
    from medtune.data.sources import LoadOptions, load_benchmark
    from medtune.data.split import contamination, split_items

    d = recipe.data
    opts = LoadOptions(format=d.format, cop_base=d.cop_base, on_bad_row=d.on_bad_row,
                       cache=None if d.cache else False)
    items, report = load_benchmark(d.train, opts)
    if d.max_rows:
        items = items[: d.max_rows]
    if d.eval:
        train = items
        evals, _ = load_benchmark(d.eval, opts)
        info = {"how": "separate eval sources", "contamination": contamination(train, evals)}
    else:
        train, evals, info = split_items(items, eval_size=d.eval_size, seed=d.split_seed)
        info = {"how": f"stable hash split of the training sources (seed {d.split_seed}, {len(evals)} held out)",
                **info}
    selection: list[MCQItem] = []
    if selects_checkpoints(recipe):
        size = min(d.selection_size, max(1, len(train) // 5))
        train, selection, _ = split_items(train, eval_size=size, seed=d.split_seed + 1)
        info["selection"] = {"how": f"stable hash split of the training side (seed {d.split_seed + 1})",
                             "size": len(selection)}
    if d.max_train:
        train = train[: d.max_train]
    if d.max_eval:
        evals = evals[: d.max_eval]
    info.update(train=len(train), eval=len(evals))
    if d.shuffle_options:
        train = shuffle_options(train, recipe.train.seed)
    return Questions(train, evals, report, info, selection)


def load_train_eval(recipe: Recipe) -> tuple[list, list, Any, dict]:
    """`load_questions` as a tuple: kept only for medtune/bench/eval.py (item 5's file) until it switches."""
    q = load_questions(recipe)
    return q.train, q.evals, q.report, q.info


def selects_checkpoints(recipe: Recipe) -> bool:
    """Whether the run evaluates during training (best checkpoint, early stopping)."""
    return bool(recipe.train.eval_steps)


def _fixed_order(item: MCQItem) -> bool:
    return any(_POSITIONAL.search(o) for o in item.options)


def shuffle_options(items: Sequence[MCQItem], seed: int) -> list[MCQItem]:
    """Each question's options in a stable random order (by sha256 of seed and id), the answer moved with
    its option; questions with positional options ("all of the above", "both A and B") keep their order."""
    import random

    out = []
    for it in items:
        if len(it.options) < 2 or _fixed_order(it):
            out.append(it)
            continue
        rng = random.Random(int.from_bytes(hashlib.sha256(f"options:{seed}:{it.id}".encode()).digest()[:8], "big"))
        order = list(range(len(it.options)))
        rng.shuffle(order)
        out.append(dataclasses.replace(it, options=tuple(it.options[i] for i in order),
                                       answer_index=order.index(it.answer_index)))
    return out


def items_digest(items: Sequence[MCQItem]) -> str:
    """sha256 over everything of the questions that a prompt can show."""
    h = hashlib.sha256()
    for it in items:
        for part in (it.id, it.question, *it.options, str(it.answer_index), it.subject or "", it.topic or "",
                     it.explanation or "", it.context or ""):
            h.update(part.encode("utf-8"))
            h.update(b"\x1f")
        h.update(b"\x1e")
    return h.hexdigest()


def tokenizer_identity(tokenizer: Any) -> dict:
    """What of a tokenizer decides its ids: its name, vocabulary size, special tokens, chat template."""
    return {"name": getattr(tokenizer, "name_or_path", ""), "size": len(tokenizer),
            "class": type(tokenizer).__name__, "eos": tokenizer.eos_token_id, "bos": tokenizer.bos_token_id,
            "add_bos": bool(getattr(tokenizer, "add_bos_token", False)),
            "chat": hashlib.sha256(str(getattr(tokenizer, "chat_template", "")).encode()).hexdigest()}


# the code that turns questions into training examples: a change to any of it is a new cache key
EXAMPLE_CODE = ("train/examples.py", "train/tokenize.py", "data/prompts.py", "data/chatframe.py",
                "eval/scoring.py", "eval/choice.py")


def template_identity(template: Any, tokenizer: Any, encoder: bool) -> Any:
    """A template by its content (a template .yaml that changes is a new key), not by its name."""
    if encoder or not isinstance(template, str):
        return template
    from medtune.data.prompts import load_template, resolve_template

    return load_template(resolve_template(template, tokenizer))


def cached_examples(items: Sequence[MCQItem], tokenizer: Any, recipe: Recipe, template: str, encoder: bool,
                    quiet: bool = False) -> list[dict]:
    """Tokenized training examples, from medtune's content-keyed cache when the same questions, tokenizer,
    template, length, target and loss were tokenized before."""
    from medtune.data.cache import code_digest, content_key

    d = recipe.data
    use = d.cache
    key = content_key("train-examples", code_digest(*EXAMPLE_CODE), items_digest(items), tokenizer_identity(tokenizer),
                      template_identity(template, tokenizer, encoder), d.max_length, d.target, d.loss_on,
                      encoder) if use else ""
    found = _load_examples(key, encoder) if use else None
    if found is not None:
        if not quiet:
            print(f"medtune: {len(found):,} tokenized examples from the cache ({key[:12]})", flush=True)
        return found
    if encoder:
        from medtune.eval.choice import encode_item

        examples = [encode_item(it, tokenizer, d.max_length) for it in items]
    else:
        from medtune.train.examples import build_examples

        examples = build_examples(items, tokenizer, template, d.target, d.max_length, d.loss_on)
    if not use:
        return examples
    try:
        _store_examples(key, examples, encoder)
    except (OSError, TypeError, ValueError) as err:  # an unwritable cache costs a re-tokenization, nothing else
        print(f"medtune: could not cache the tokenized examples: {err}", file=sys.stderr)
    return examples


def _load_examples(key: str, encoder: bool) -> Any:
    """Cached examples: an encoder's as JSON, a causal LM's as the arrays of TokenizedExamples."""
    from medtune.data.cache import load_cached, load_cached_arrays
    from medtune.train.tokenize import TokenizedExamples

    if encoder:
        found = load_cached("train-examples", key)
        return found if isinstance(found, list) and all(isinstance(e, dict) for e in found) else None
    arrays = load_cached_arrays("train-examples", key)
    return None if arrays is None else TokenizedExamples.from_arrays(arrays)


def _store_examples(key: str, examples: Any, encoder: bool) -> None:
    from medtune.data.cache import store_cached, store_cached_arrays

    if encoder:
        store_cached("train-examples", key, examples)
    else:
        store_cached_arrays("train-examples", key, examples.to_arrays())


class ExampleList:
    """A plain map-style dataset over tokenized examples, with their lengths (for length grouping)."""

    def __init__(self, examples: list[dict]):
        self.examples = examples
        lengths = getattr(examples, "lengths", None)
        self.lengths = list(lengths) if lengths is not None else [n_tokens(e) for e in examples]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        return self.examples[i]


def total_tokens(examples: Sequence) -> int:
    """Tokens of all examples."""
    lengths = getattr(examples, "lengths", None)
    return sum(lengths) if lengths is not None else sum(n_tokens(e) for e in examples)


def n_tokens(example: dict) -> int:
    """Tokens of one example (summed over options for a multiple-choice example)."""
    ids = example["input_ids"]
    return sum(len(x) for x in ids) if ids and isinstance(ids[0], list) else len(ids)
