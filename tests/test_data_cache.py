"""The content-keyed cache: loaded records are reused while file and options are the same."""

from __future__ import annotations

import json
import os

import pytest

from medtune.data import LoadOptions, load_benchmark
from medtune.data.cache import cache_root, content_key, load_cached, store_cached


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTUNE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _write(path, cops):
    rows = [{"id": f"q{i}", "question": f"Question {i}?", "opa": "a", "opb": "b", "opc": "c", "opd": "d",
             "cop": c} for i, c in enumerate(cops)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_store_and_load_by_key(cache):
    key = content_key("tokenized", {"tokenizer": "abc", "max_length": 512}, [1, 2])
    assert key == content_key("tokenized", {"max_length": 512, "tokenizer": "abc"}, (1, 2))  # canonical JSON
    assert key != content_key("tokenized", {"tokenizer": "abd", "max_length": 512}, [1, 2])
    assert load_cached("tokenized", key) is None
    path = store_cached("tokenized", key, {"ids": [1, 2, 3]})
    assert path.is_file() and path.is_relative_to(cache_root()) and cache_root() == cache / "data-cache"
    assert load_cached("tokenized", key) == {"ids": [1, 2, 3]}
    path.write_bytes(b"not a pickle")          # a damaged entry is a miss, not an error
    assert load_cached("tokenized", key) is None


def test_items_are_reused_and_invalidated(cache, tmp_path, capsys):
    path = _write(tmp_path / "data.jsonl", [1, 2, 3, 4])
    opts = LoadOptions(cache=True)
    first, rep1 = load_benchmark(path, opts)
    assert rep1.cached is None and capsys.readouterr().err == ""
    second, rep2 = load_benchmark(path, opts)
    assert rep2.cached is not None and second == first and rep2.sources[0].sha256 == rep1.sources[0].sha256
    assert capsys.readouterr().err.startswith("medtune: 4 records from the cache (sources unchanged")
    # other options: another entry (cop 1-4 read as 0-based would fail; the answers differ)
    zero, rep3 = load_benchmark(path, LoadOptions(cache=True, cop_base=1))
    assert rep3.cached is None and [i.answer_index for i in zero] == [0, 1, 2, 3]
    # the file changes (same size, new mtime): reread
    _write(tmp_path / "data.jsonl", [4, 3, 2, 1])
    os.utime(path, ns=(1, 1))
    third, rep4 = load_benchmark(path, opts)
    assert rep4.cached is None and [i.answer_index for i in third] == [3, 2, 1, 0]
    # never used when caching is off; small files are not cached by default
    assert load_benchmark(path, LoadOptions(cache=False))[1].cached is None
    assert load_benchmark(path)[1].cached is None


def test_deleting_the_cache_is_safe(cache, tmp_path):
    import shutil

    path = _write(tmp_path / "data.jsonl", [1, 2, 3, 4])
    load_benchmark(path, LoadOptions(cache=True))
    shutil.rmtree(cache)
    items, rep = load_benchmark(path, LoadOptions(cache=True))
    assert len(items) == 4 and rep.cached is None


def test_hub_datasets_are_cached_by_their_fingerprint(cache, tmp_path):
    folder = tmp_path / "hub"
    folder.mkdir()
    _write(folder / "train.jsonl", [0, 1, 2, 3, 1])
    spec = f"hf:{folder}:train"                       # a local folder in the Hub's layout (offline)
    first, rep1 = load_benchmark(spec, LoadOptions(cache=True))
    second, rep2 = load_benchmark(spec, LoadOptions(cache=True))
    assert rep1.cached is None and rep2.cached is not None and second == first
    assert [i.answer_index for i in second] == [0, 1, 2, 3, 1] and rep2.sources[0].answer_base == 0


def test_an_unwritable_cache_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("MEDTUNE_CACHE", str(blocker))     # mkdir under a file fails
    path = _write(tmp_path / "data.jsonl", [1, 2, 3, 4])
    items, rep = load_benchmark(path, LoadOptions(cache=True))
    assert len(items) == 4 and rep.cached is None


def test_a_record_pickles_whole_including_its_meta():
    import pickle

    from medtune.data.schema import MCQItem

    item = MCQItem(id="q1", question="Q?", options=("a", "b"), answer_index=1, subject="Anatomy",
                   context="ctx", source="pubmedqa", split="test", meta={"contexts": ["x", "y"]})
    back = pickle.loads(pickle.dumps([item, item], protocol=pickle.HIGHEST_PROTOCOL))
    assert back[0] == item and back[0].meta == {"contexts": ["x", "y"]} and back[0].split == "test"
    assert back[0] is back[1]  # the pickle memo still shares repeated records
