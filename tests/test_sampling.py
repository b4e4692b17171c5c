"""Letter-balanced training steps (`medtune.train.sampling`): each step holds every gold letter equally
often, every example is read once an epoch, and micro-batches hold examples of similar length."""

from __future__ import annotations

import random
from collections import Counter

import torch

from medtune.train.sampling import LetterBalancedSampler, deal


def test_deal_goes_round_the_letters_longest_first():
    letters = [0, 0, 1, 1, 2, 3, 3, 0]
    lengths = [10, 30, 5, 50, 7, 1, 2, 20]
    # letter 0 holds 3 of the 8: its examples sit at 1/6, 3/6, 5/6 of the way; the others' at 1/4, 3/4
    assert deal(range(8), letters, None) == [0, 2, 5, 1, 4, 3, 6, 7]
    assert deal(range(8), letters, lengths) == [1, 3, 6, 7, 4, 2, 5, 0]


def _data(n=800, seed=0, even=True):
    rng = random.Random(seed)
    letters = [i % 4 for i in range(n)] if even else [rng.randrange(4) for _ in range(n)]
    rng.shuffle(letters)
    return letters, [rng.randrange(40, 250) for _ in range(n)]


def _balanced(steps, letters):
    return sum(Counter(letters[i] for i in s) == Counter({0: 2, 1: 2, 2: 2, 3: 2}) for s in steps)


def test_every_step_is_balanced_and_every_example_is_read_once():
    letters, lengths = _data()
    order = list(LetterBalancedSampler(letters, 8, lengths, generator=torch.Generator().manual_seed(0)))
    assert sorted(order) == list(range(len(letters)))
    assert _balanced([order[i:i + 8] for i in range(0, 800, 8)], letters) == 100
    assert _balanced([list(range(i, i + 8)) for i in range(0, 800, 8)], letters) < 20  # reading in random order
    uneven, _ = _data(even=False)  # 187-214 of each letter: each step holds them in about that proportion
    order = list(LetterBalancedSampler(uneven, 8, lengths, generator=torch.Generator().manual_seed(0)))
    assert max(max(Counter(uneven[i] for i in order[k:k + 8]).values()) for k in range(0, 800, 8)) <= 3


def test_micro_batches_hold_examples_of_similar_length():
    letters, lengths = _data()
    order = list(LetterBalancedSampler(letters, 8, lengths, generator=torch.Generator().manual_seed(1)))
    pairs = [order[i:i + 2] for i in range(0, len(order), 2)]
    gap = sum(abs(lengths[a] - lengths[b]) for a, b in pairs) / len(pairs)
    assert gap < 10  # random pairs differ by ~70 tokens on these lengths


def test_the_same_generator_seed_gives_the_same_order():
    letters, lengths = _data(100)
    a = list(LetterBalancedSampler(letters, 8, lengths, generator=torch.Generator().manual_seed(3)))
    b = list(LetterBalancedSampler(letters, 8, lengths, generator=torch.Generator().manual_seed(3)))
    c = list(LetterBalancedSampler(letters, 8, lengths, generator=torch.Generator().manual_seed(4)))
    assert a == b and a != c


def test_the_trainer_reads_letter_balanced_steps_unless_the_recipe_says_no(tmp_path, tiny_model_dir, sample_jsonl):
    from conftest import write_recipe
    from medtune.runfolder import RunFolder
    from medtune.train.methods import get_method
    from medtune.train.recipe import load_recipe
    from medtune.train.run import make_trainer, set_up

    for balance in (True, False):
        recipe = load_recipe(str(write_recipe(tmp_path, tiny_model_dir, sample_jsonl, tmp_path / f"b{balance}",
                                              balance_letters=balance, grad_accum=2)))
        s = set_up(recipe, get_method(recipe.method))
        trainer, examples = make_trainer(recipe, s, RunFolder(recipe.output_dir))
        sampler = trainer._get_train_sampler()
        assert isinstance(sampler, LetterBalancedSampler) == balance
        if balance:
            assert sampler.step == 8 and sampler.letters == [it.answer_index for it in s.questions.train]
            assert sorted(sampler) == list(range(len(examples)))


def test_length_grouping_speaks_the_installed_transformers_field():
    """transformers 5.2 replaced `group_by_length` with `train_sampling_strategy`; both are read and written."""
    from types import SimpleNamespace

    from transformers import TrainingArguments

    from medtune.train.sampling import grouped_by_length, length_grouping

    new = "train_sampling_strategy" in TrainingArguments.__dataclass_fields__
    on, off = length_grouping(True), length_grouping(False)
    assert on == ({"train_sampling_strategy": "group_by_length"} if new else {"group_by_length": True})
    assert off == ({"train_sampling_strategy": "random"} if new else {"group_by_length": False})
    args = TrainingArguments(output_dir="unused", use_cpu=True, report_to="none", **on)
    assert grouped_by_length(args)
    assert not grouped_by_length(TrainingArguments(output_dir="unused", use_cpu=True, report_to="none", **off))
    assert grouped_by_length(SimpleNamespace(group_by_length=True))  # a 5.0/5.1 config
    assert not grouped_by_length(SimpleNamespace(group_by_length=False))
