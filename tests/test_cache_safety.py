"""Cache files are data that cannot run code; a tampered entry is recomputed; a cache folder others can
write is refused; writes are fsynced and stale temporaries removed."""

from __future__ import annotations

import json
import os
import pickle
import time

import numpy as np
import pytest

from medtune.data import LoadOptions, load_benchmark
from medtune.data.cache import cache_root, content_key, load_cached, load_cached_arrays, store_cached_arrays
from medtune.errors import MedtuneError
from medtune.io import atomic_write_text


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTUNE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


class Planted:
    """A pickle payload: unpickling it would create `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _data(tmp_path):
    rows = [{"id": f"q{i}", "question": f"Question {i}?", "opa": "a", "opb": "b", "opc": "c", "opd": "d",
             "cop": c} for i, c in enumerate([0, 1, 2, 3])]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_a_planted_pickle_runs_nothing_and_the_records_are_recomputed(cache, tmp_path, capsys):
    path = _data(tmp_path)
    first, _ = load_benchmark(path, LoadOptions(cache=True))
    entries = sorted(cache_root().rglob("*.json"))
    assert [e.parent.parent.name for e in entries] == sorted(["file-sha256", "items"])
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Planted(marker), protocol=pickle.HIGHEST_PROTOCOL)
    for entry in entries:                        # the entries themselves, and where pickles used to live
        entry.write_bytes(payload)
        entry.with_suffix(".pkl").write_bytes(payload)
    again, rep = load_benchmark(path, LoadOptions(cache=True))
    assert not marker.exists() and rep.cached is None and again == first
    third, rep = load_benchmark(path, LoadOptions(cache=True))   # recomputed entries were written back
    assert rep.cached is not None and third == first and not marker.exists()
    # an .npz holding a pickled object array is refused by numpy, so a miss
    key = content_key("arrays")
    entry = store_cached_arrays("train-examples", key, {"ids": np.arange(3)})
    with open(entry, "wb") as fh:
        np.savez(fh, ids=np.array([Planted(marker)], dtype=object))
    assert load_cached_arrays("train-examples", key) is None and not marker.exists()


def test_a_tampered_entry_is_a_miss_not_wrong_records(cache, tmp_path):
    path = _data(tmp_path)
    first, _ = load_benchmark(path, LoadOptions(cache=True))
    (entry,) = (cache_root() / "items").rglob("*.json")
    doc = json.loads(entry.read_text())
    for change in ({"answer": 9}, {"arity": 1}, {"fields": 1}, {"version": 1}):
        bad = json.loads(json.dumps(doc))
        if "answer" in change:
            bad["value"]["items"][0][3] = 9                    # an answer index out of range
        elif "arity" in change:
            bad["value"]["items"][0].pop()                     # a record with a field missing
        elif "fields" in change:
            bad["value"]["fields"] = bad["value"]["fields"][::-1]
        else:
            bad["medtune-cache"] = 1
        entry.write_text(json.dumps(bad))
        again, rep = load_benchmark(path, LoadOptions(cache=True))
        assert rep.cached is None and again == first, change
    (sha,) = (cache_root() / "file-sha256").rglob("*.json")
    sha.write_text(json.dumps({"medtune-cache": 2, "value": "../../etc"}))   # not a sha256: recomputed
    assert load_benchmark(path, LoadOptions(cache=True))[0] == first
    assert len(json.loads(sha.read_text())["value"]) == 64


@pytest.mark.parametrize("mode,who", [(0o777, "others (mode 777)"), (0o770, "its group (mode 770)")])
def test_a_cache_folder_others_can_write_is_refused(cache, tmp_path, mode, who):
    path = _data(tmp_path)
    load_benchmark(path, LoadOptions(cache=True))
    folder = cache_root() / "items"
    os.chmod(folder, mode)
    with pytest.raises(MedtuneError) as err:
        load_benchmark(path, LoadOptions(cache=True))
    assert str(err.value) == (f"{folder}: cache: the cache folder is writable by {who}: whoever can write it "
                              f"can change what medtune loads; run `chmod go-w {folder}` or set MEDTUNE_CACHE "
                              f"to a folder of your own")
    assert load_benchmark(path, LoadOptions(cache=False))[1].cached is None     # no cache, no question
    os.chmod(folder, 0o700)
    assert load_benchmark(path, LoadOptions(cache=True))[1].cached is not None


def test_cache_folders_are_private_and_foreign_entries_ignored(cache, tmp_path):
    path = _data(tmp_path)
    load_benchmark(path, LoadOptions(cache=True))
    for folder in [cache, *(p for p in cache.rglob("*") if p.is_dir())]:
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    (entry,) = (cache_root() / "items").rglob("*.json")
    os.chmod(entry, 0o666)                       # an entry others could have written: not read
    assert load_benchmark(path, LoadOptions(cache=True))[1].cached is None


def test_atomic_writes_remove_stale_temporaries_only(tmp_path):
    target = tmp_path / "out.json"
    stale, fresh = tmp_path / ".out.json.abc123.tmp", tmp_path / ".out.json.def456.tmp"
    other = tmp_path / ".other.json.abc123.tmp"
    for p in (stale, fresh, other):
        p.write_text("half")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    atomic_write_text(target, "{}")
    assert target.read_text() == "{}" and not stale.exists() and fresh.exists() and other.exists()


def test_cache_writes_are_fsynced(cache, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    key = content_key("x")
    store_cached_arrays("t", key, {"a": np.arange(4)})
    assert len(synced) == 2                      # the file, then its folder (the rename)
    assert load_cached("t", key) is None and load_cached_arrays("t", key)["a"].tolist() == [0, 1, 2, 3]


def test_values_json_cannot_hold_are_not_cached(cache):
    from medtune.data.sources import _store

    key = content_key("meta")
    _store("items", key, {"meta": b"\x00bytes from a Parquet column"})    # skipped, never an error
    assert load_cached("items", key) is None and not list(cache_root().rglob("*.tmp"))
