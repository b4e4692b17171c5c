"""Row errors are reported at their line before the file-level answer-base question; only a truly
ambiguous file asks for --cop-base; Hub rows name their split and index."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from medtune.data import LoadOptions, load_benchmark
from medtune.data import convert
from medtune.errors import MedtuneError


def _rows(cops, **over):
    rows = [{"id": f"q{i}", "question": f"Question {i} about the kidney?", "opa": "a", "opb": "b", "opc": "c",
             "opd": "d", "cop": c, "subject_name": "Physiology"} for i, c in enumerate(cops)]
    for line, patch in over.items():
        rows[int(line[1:]) - 1].update(patch)
    return rows


def _write(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _error(path, **kw) -> str:
    with pytest.raises(MedtuneError) as err:
        load_benchmark(str(path), LoadOptions(cache=False, **kw))
    return str(err.value)


def test_cop_out_of_range_under_both_bases_fails_at_its_line(tmp_path):
    path = _write(tmp_path, _rows([1, 2, 3, 2, 7, 1]))          # no 0 and no 4: the base is undecided
    assert _error(path) == (f"{path}:5: cop: answer 7 out of range for 4 options whether answers count "
                            f"from 0 (0-3) or from 1 (1-4)")
    proc = run_cli("data", "validate", str(path))
    assert proc.returncode == 2 and proc.stderr.strip() == _error(path)


def test_duplicate_id_and_empty_option_fail_at_their_lines_before_the_base_question(tmp_path):
    dup = _write(tmp_path, _rows([1, 2, 3, 2, 1], l4={"id": "q1"}), "dup.jsonl")
    assert _error(dup) == f"{dup}:4: id: duplicate id 'q1' (first on line 2)"
    empty = _write(tmp_path, _rows([1, 2, 3, 2, 1], l3={"opc": "  "}), "empty.jsonl")
    assert _error(empty) == f"{empty}:3: opc: empty option"
    missing = _write(tmp_path, _rows([1, 2, 3], l2={"question": None}), "missing.jsonl")
    assert _error(missing) == f"{missing}:2: question: empty question"
    wrong = _write(tmp_path, _rows([1, 2, 3], l3={"cop": "b"}), "wrong.jsonl")
    assert _error(wrong) == f"{wrong}:3: cop: expected an integer answer index, got 'b'"


def test_only_an_ambiguous_file_asks_for_cop_base_with_count_and_example(tmp_path):
    path = _write(tmp_path, _rows([1, 2, 3, 2, 3, 1]))
    msg = _error(path)
    assert msg == (f"{path}: cop: cannot tell whether answers count from 0 (the Hugging Face copy of MedMCQA) "
                   f"or from 1 (the original release): none of the 6 answers decides it (no 0 and no value "
                   f"equal to the number of options; values seen are 1, 2, 3; e.g. line 1: cop 1 with 4 "
                   f"options); pass --cop-base 0 or --cop-base 1")
    items, report = load_benchmark(str(path), LoadOptions(cop_base=1, cache=False))
    assert [it.answer_letter for it in items] == list("ABCBCA") and report.sources[0].answer_base == 1
    # a forced base judges each row at its line
    bad = _write(tmp_path, _rows([1, 2, 0, 2]), "forced.jsonl")
    assert _error(bad, cop_base=1) == f"{bad}:3: cop: answer 0 out of range 1-4 (1-based, 4 options)"


def test_a_mixed_answer_base_stops_the_file_in_every_mode(tmp_path):
    path = _write(tmp_path, _rows([1, 2, 4, 9, 0, 3]))     # a 1-based file with a stray 0 (and a bad 9)
    want = (f"{path}:5: cop: answer 0 counts from 0, but line 3 has cop 4, which counts from 1 (4 options): "
            f"one file has one base; fix the rows that disagree, or pass --cop-base 0 or --cop-base 1 (rows "
            f"that disagree are then bad rows)")
    assert _error(path, on_bad_row="skip") == want       # skipping the 9 does not decide the base
    assert _error(path) == (f"{path}:4: cop: answer 9 out of range for 4 options whether answers count from 0 "
                            f"(0-3) or from 1 (1-4)")   # the first bad row stops first
    del_nine = _write(tmp_path, _rows([1, 2, 4, 0, 3]), "mixed.jsonl")
    assert _error(del_nine) == want.replace(str(path), str(del_nine)).replace(":5:", ":4:")
    # the user says which base: rows that disagree are bad rows, skipped and counted
    items, report = load_benchmark(str(path), LoadOptions(on_bad_row="skip", cop_base=1, cache=False))
    assert [it.id for it in items] == ["q0", "q1", "q2", "q5"] and [it.answer_index for it in items] == [0, 1, 3, 2]
    assert report.skipped == [f"{path}:4: cop: answer 9 out of range for 4 options whether answers count from "
                              f"0 (0-3) or from 1 (1-4)",
                              f"{path}:5: cop: answer 0 out of range 1-4 (1-based, 4 options)"]


def test_skip_mode_counts_rows_bad_under_the_decided_base(tmp_path):
    path = _write(tmp_path, _rows([0, 2, 3, 9, 1]))              # a 0: counts from 0
    items, report = load_benchmark(str(path), LoadOptions(on_bad_row="skip", cache=False))
    assert [it.id for it in items] == ["q0", "q1", "q2", "q4"]
    assert report.skipped == [f"{path}:4: cop: answer 9 out of range for 4 options whether answers count "
                              f"from 0 (0-3) or from 1 (1-4)"]


def test_hub_rows_name_split_and_index_and_how_to_continue(monkeypatch):
    rows = _rows([0, 1, 2, 3, 1]) + _rows([2])
    rows[3]["opb"] = ""
    rows[5]["id"] = "q9"
    monkeypatch.setattr(convert, "open_hf", lambda spec: rows)      # stands in for datasets.load_dataset
    spec = "hf:openlifescienceai/medmcqa:train"
    with pytest.raises(MedtuneError) as err:
        load_benchmark(spec)
    assert str(err.value) == (f"{spec}: opb: empty option (split 'train', row index 3); --on-bad-row skip "
                              f"continues past bad rows and records how many were skipped")
    items, report = load_benchmark(spec, LoadOptions(on_bad_row="skip"))
    assert len(items) == 5 and report.sources[0].skipped == 1 and report.sources[0].answer_base == 0
