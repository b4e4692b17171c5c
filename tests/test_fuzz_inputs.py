"""Fuzzing the readers: valid files of every format, mutated row by row (values replaced, keys dropped) and
byte by byte (quotes, commas, newlines, NUL, bad UTF-8, BOMs, cuts), load cleanly or raise one MedtuneError
that names the file and, for a row's problem, its line; never another exception. Plus the file-system
cases: links to nothing, pipes, folders, unreadable files and a full disk."""

from __future__ import annotations

import errno
import io
import json
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medtune.cli import main
from medtune.data import LoadOptions, load_benchmark
from medtune.data.schema import MAX_OPTIONS, MIN_OPTIONS
from medtune.errors import MedtuneError

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

ROWS = {
    "medmcqa": [{"id": f"q{i}", "question": f"Question {i} about the liver?", "opa": "alpha", "opb": "beta",
                 "opc": "gamma", "opd": "delta", "cop": c, "subject_name": "Physiology", "exp": "Because."}
                for i, c in enumerate([0, 3, 1])],
    "medtune": [{"id": f"n{i}", "question": f"Which drug {i}?", "options": ["one", "two", "three"],
                 "answer_index": i, "subject": "Pharmacology", "context": "ctx", "meta": {"k": 1}} for i in range(3)],
    "medqa": [{"question": f"A patient {i}?", "options": {"A": "a", "B": "b", "C": "c", "D": "d"},
               "answer_idx": "ABC"[i], "answer": "abc"[i], "meta_info": "step1"} for i in range(3)],
    "pubmedqa": [{"pubid": str(i), "QUESTION": f"Does {i} work?", "final_decision": "yes", "CONTEXTS": ["x", "y"],
                  "LABELS": ["A", "B"], "LONG_ANSWER": "Yes."} for i in range(3)],
    "swag": [{"sent1": f"A patient {i}?", "ending0": "a", "ending1": "b", "ending2": "c", "ending3": "d", "label": i}
             for i in range(3)],
    "mmlu_hub": [{"question": f"Q{i}?", "choices": ["a", "b", "c", "d"], "answer": i, "subject": "anatomy"}
                 for i in range(3)],
}
CSV = {
    "mmlu.csv": 'What is the first drug?,one,two,three,four,A\n"A quoted, question?",one,two,three,four,B\n'
                'What is "this"?,one,two,"three\nlines",four,C\n',
    "generic.csv": "stem,A,B,C,label,topic\nWhat is first?,one,two,three,A,x\nWhat is second?,one,two,three,2,y\n"
                   "What is third?,one,two,three,three,z\n",
}
GENERIC = LoadOptions(cache=False, columns={"question": "stem", "options": "A,B,C", "answer": "label",
                                            "topic": "topic"})
FILE_LEVEL = re.compile(r"(no records|no valid records|cannot tell whether answers count|cannot read Parquet|"
                        r"expected a JSON array|malformed CSV|the file is UTF-16)")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.integers() | st.floats(allow_nan=True)
    | st.sampled_from(["", " ", "nan", "²", "A", "e", "1", "0", "4", "\x00", "a,b", '"', "yes", "é"]) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)
NASTY = [b'"', b",", b"\n", b"\r\n", b"\x00", b"\xff", b"\xc3", b"{", b"}", b"[", b"]", b"\\", b"\xef\xbb\xbf",
         b" ", b"0", b"9", b":", b"NaN", b"\\u0000", b'""', b"\xff\xfe"]


def _check(path, opts: LoadOptions, lines: int | None = None) -> None:
    """A clean load gives sane records; a MedtuneError is one line naming the file (and a line in range:
    `lines`, by default the file's newlines + 1)."""
    lines = lines or path.read_bytes().count(b"\n") + 1
    for mode in ("error", "skip"):
        opts.on_bad_row = mode
        try:
            items, _ = load_benchmark(str(path), opts)
        except MedtuneError as err:
            msg = str(err)
            assert "\n" not in msg and msg.startswith(f"{path}"), msg
            at = re.match(rf"{re.escape(str(path))}:(\d+): ", msg)
            if at is None:
                assert FILE_LEVEL.search(msg) or msg.startswith(f"{path}: cop:") or msg.startswith(f"{path}: label:") \
                    or msg.startswith(f"{path}: json:"), msg
            else:
                assert 1 <= int(at.group(1)) <= max(lines, 1), msg
            continue
        for it in items:
            assert MIN_OPTIONS <= len(it.options) <= MAX_OPTIONS and 0 <= it.answer_index < len(it.options)
            assert it.question and all(isinstance(o, str) and o and o.lower() != "nan" for o in it.options)
            assert all(isinstance(x, (str, type(None))) for x in (it.subject, it.topic, it.explanation, it.context))
            assert isinstance(it.meta, dict) and "\x00" not in it.question


@FUZZ
@given(fmt=st.sampled_from(sorted(ROWS)), row=st.integers(0, 2), data=st.data())
def test_mutated_rows_load_or_name_their_line(tmp_path, fmt, row, data):
    rows = json.loads(json.dumps(ROWS[fmt]))
    key = data.draw(st.sampled_from(sorted(rows[row]) + ["extra"]))
    if data.draw(st.booleans()):
        rows[row].pop(key, None)
    else:
        rows[row][key] = data.draw(json_values)
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    _check(path, LoadOptions(cache=False))


def _mutate(raw: bytes, data) -> bytes:
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw)))
        kind = data.draw(st.sampled_from(["insert", "delete", "cut", "dup"]))
        if kind == "insert":
            raw = raw[:at] + data.draw(st.sampled_from(NASTY)) + raw[at:]
        elif kind == "delete":
            raw = raw[:at] + raw[at + data.draw(st.integers(1, 8)):]
        elif kind == "cut":
            raw = raw[:at]
        else:
            lines = raw.split(b"\n")
            k = data.draw(st.integers(0, len(lines) - 1))
            raw = b"\n".join([*lines[:k], lines[k], *lines[k:]])
    return raw


@FUZZ
@given(fmt=st.sampled_from(sorted(ROWS)), data=st.data())
def test_mutated_jsonl_bytes_load_or_name_their_line(tmp_path, fmt, data):
    raw = "".join(json.dumps(r) + "\n" for r in ROWS[fmt]).encode()
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(_mutate(raw, data))
    _check(path, LoadOptions(cache=False))


@FUZZ
@given(name=st.sampled_from(sorted(CSV)), data=st.data())
def test_mutated_csv_bytes_load_or_name_their_line(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(_mutate(CSV[name].encode(), data))
    _check(path, GENERIC if name == "generic.csv" else LoadOptions(cache=False))


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(["medmcqa", "medtune", "mmlu_hub"]), row=st.integers(0, 2), data=st.data())
def test_mutated_parquet_loads_or_names_its_row(tmp_path, fmt, row, data):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = json.loads(json.dumps(ROWS[fmt]))
    key = data.draw(st.sampled_from(sorted(rows[row])))
    rows[row][key] = data.draw(st.none() | st.floats(allow_nan=True) | st.integers(-3, 9) | st.sampled_from(["", "nan", "²"]))
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return                                   # a value no Parquet column could hold next to the others
    buf = io.BytesIO()
    pq.write_table(table, buf)
    raw = buf.getvalue()
    if data.draw(st.booleans()):                  # and a damaged file: bytes overwritten somewhere
        at = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + data.draw(st.binary(min_size=1, max_size=4)) + raw[at + 4:]
    path = tmp_path / "rows.parquet"
    path.write_bytes(raw)
    _check(path, LoadOptions(cache=False), lines=len(rows))


def test_links_pipes_and_folders_are_named(tmp_path, capsys):
    (tmp_path / "loop.jsonl").symlink_to(tmp_path / "loop.jsonl")
    (tmp_path / "dangling.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    os.mkfifo(tmp_path / "pipe.jsonl")
    (tmp_path / "folder").mkdir()
    cases = {"loop.jsonl": "a symbolic link to nothing (its target is missing, or a loop)",
             "dangling.jsonl": "a symbolic link to nothing (its target is missing, or a loop)",
             "pipe.jsonl": "not a regular file (a pipe, a device or a socket)",
             "folder": "no .jsonl, .csv, .parquet files in this folder"}
    for name, want in cases.items():
        assert main(["data", "validate", str(tmp_path / name)]) == 2
        assert capsys.readouterr().err.strip() == f"{tmp_path / name}: {want}"


def test_unreadable_file_and_full_disk_are_one_line(tmp_path, monkeypatch, capsys, sample_jsonl):
    import builtins

    real_open = builtins.open

    def denied(file, *args, **kw):
        if str(file) == str(sample_jsonl):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kw)

    monkeypatch.setattr(builtins, "open", denied)
    assert main(["data", "validate", str(sample_jsonl)]) == 2
    assert capsys.readouterr().err.strip() == f"{sample_jsonl}: cannot read: Permission denied"
    monkeypatch.setattr(builtins, "open", real_open)

    from medtune import io as mio

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mio.os, "fsync", full)
    out = tmp_path / "split"
    assert main(["data", "split", str(sample_jsonl), "--out", str(out), "--eval-size", "5"]) == 2
    assert capsys.readouterr().err.strip() == "medtune: error: No space left on device"
    assert not out.exists() or not any(p.suffix == ".jsonl" for p in out.iterdir())   # nothing half-written
