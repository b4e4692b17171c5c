"""Near duplicates: planted twins are found (recall), nothing else is (precision), exactly."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

from medtune.data import LoadOptions, load_benchmark
from medtune.data.benchmarks import BENCHMARKS, builtin_names, resolve
from medtune.data.duplicates import clusters, contamination, near_duplicate_pairs
from medtune.data.neardup import _item_tokens, _text_tokens, item_tokens, normalize
from medtune.data.synth import EDIT_KINDS, generate_rows, plant_twins, write_jsonl
from medtune.errors import MedtuneError

DATA = Path(__file__).resolve().parent.parent / "medtune" / "data"


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    train = list(generate_rows(1500, seed=3))
    twins = plant_twins(train, 300, seed=4)                  # 50 of each kind, questions of 15+ words
    fresh = list(generate_rows(300, seed=5))
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "eval.jsonl", [t for t, _, _ in twins] + fresh)
    tr, _ = load_benchmark(str(folder / "train.jsonl"), LoadOptions(cache=False))
    ev, _ = load_benchmark(str(folder / "eval.jsonl"), LoadOptions(cache=False))
    return tr, ev, twins


def test_contamination_finds_every_planted_twin_and_nothing_else(planted):
    train, evals, twins = planted
    c = contamination(train, evals)
    assert c["eval_with_exact_twin_in_train"] + c["eval_with_near_twin_in_train"] == 300   # recall 100%
    kinds = Counter(k for _, _, k in twins)
    exact_kinds = kinds["exact"] + kinds["reorder"] + kinds["case_space"]
    assert c["eval_with_exact_twin_in_train"] >= exact_kinds and c["eval_with_near_twin_in_train"] >= 140
    twin_ids = {t["id"] for t, _, _ in twins}
    assert all(e in twin_ids for _, e, _ in c["examples"])                                # no fresh one


def test_split_clusters_hold_each_planted_pair(planted):
    train, evals, twins = planted
    items = train + evals[:300]
    labels, _, info = clusters(items)
    at = {it.id: i for i, it in enumerate(items)}
    assert all(labels[at[t["id"]]] == labels[at[src]] for t, src, _ in twins)
    assert info["multi_question_clusters"] == 300     # one per planted pair: no other question joined


def test_one_word_edits_pass_the_rule_that_the_old_threshold_missed(planted):
    train, evals, twins = planted
    by_id = {it.id: it for it in train + evals}
    pairs = [(normalize(by_id[src]), normalize(by_id[t["id"]])) for t, src, k in twins if k in EDIT_KINDS]
    sims = [s for a, b in pairs for _, _, s in near_duplicate_pairs([a, b], threshold=0.0)]
    assert len(sims) == 150 and min(sims) >= 0.7 and sum(s < 0.8 for s in sims) > 0


def test_tokens_match_the_normalised_text_and_the_forked_half(monkeypatch):
    items = [it for it in load_benchmark("medmcqa-dev")[0]]
    serial = _item_tokens(items, 0, len(items))
    text = _text_tokens(normalize(it) for it in items)
    assert all((a == b).all() for a, b in zip(serial, text))
    import medtune.data.neardup as nd

    calls = []

    def spy(its, start, stop):
        calls.append((start, stop))      # only this process's calls: the forked half is not seen here
        return _item_tokens(its, start, stop)
    # other tests may have left threads (torch's) running: the fork is skipped then, by design; here
    # the child only runs Python, so let it fork anyway
    monkeypatch.setattr(nd.threading, "active_count", lambda: 1)
    old, nd.PARALLEL_MIN, nd._item_tokens = nd.PARALLEL_MIN, 100, spy
    try:
        both = item_tokens(items)
    finally:
        nd.PARALLEL_MIN, nd._item_tokens = old, _item_tokens
    assert calls == [(0, len(items) // 2)]
    assert all((a == b).all() for a, b in zip(serial, both))


def test_pairs_do_not_depend_on_order():
    texts = ["a b c d e f g h i j", "x y z w", "a b c d e f g h i k", "a b c d e f g h i j", "x y z"]

    def found(ts):
        return {(frozenset((ts[i], ts[j])), round(s, 6)) for i, j, s in near_duplicate_pairs(ts)}
    assert found(texts) == found(texts[::-1]) == {
        (frozenset(["a b c d e f g h i j"]), 1.0),                              # the exact pair
        (frozenset(["a b c d e f g h i j", "a b c d e f g h i k"]), 0.777778)}  # 7/9 trigrams, twice


def test_registry_names_resolve_and_misspellings_get_a_suggestion():
    names = builtin_names()
    assert names["medmcqa-train"] == "hf:openlifescienceai/medmcqa:train"
    assert names["medmcqa-dev"].endswith("medmcqa_dev.jsonl")
    assert BENCHMARKS["medqa"].lm_eval_tasks == ("medqa_4options",)
    assert [t for b in BENCHMARKS.values() for t in b.lm_eval_tasks if t.startswith("mmlu_")] == [
        "mmlu_anatomy", "mmlu_clinical_knowledge", "mmlu_college_biology", "mmlu_college_medicine",
        "mmlu_medical_genetics", "mmlu_professional_medicine"]
    assert all(b.scorer == "letter" for b in BENCHMARKS.values())
    with pytest.raises(MedtuneError, match=r"did you mean 'medmcqa-train'"):
        resolve("medmcqa-trian")
    assert len(load_benchmark("medmcqa-dev")[0]) == 4183


def test_data_modules_import_only_core_and_data_and_no_cycle():
    graph = {}
    for path in DATA.glob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        mine = {m for m in mods if m.startswith("medtune")}
        core = ("medtune.errors", "medtune.io", "medtune.backend")  # backend.need: an optional module's extra
        assert all(m in core or m.startswith("medtune.data") for m in mine), (path, mine)
        graph[f"medtune.data.{path.stem}"] = {m for m in mine if m.startswith("medtune.data.")}

    def reach(start, seen):
        for m in graph.get(start, ()):
            if m not in seen:
                seen.add(m)
                reach(m, seen)
        return seen
    assert [m for m in graph if m in reach(m, set())] == []
