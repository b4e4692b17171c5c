"""Every file in tests/data/malformed gives one `path:line: field: message` line and exit 2."""

from __future__ import annotations

import json

import pytest

from conftest import DATA, run_cli, write_recipe
from medtune.cli import main

MALFORMED = DATA / "malformed"
EXPECTED = json.loads((MALFORMED / "expected.json").read_text("utf-8"))
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def test_corpus_is_large_and_complete():
    files = sorted(p.name for p in MALFORMED.iterdir() if p.name != "expected.json")
    assert len(files) >= 40 and files == sorted(EXPECTED)
    for suffix in SUFFIXES:                       # every kind of file medtune reads
        assert sum(f.endswith(suffix) for f in files) >= 5, suffix


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_malformed_file_gives_its_one_line_message(name, capsys):
    """`medtune data validate FILE` (the CLI's own entry point, in this process: an exception other than
    MedtuneError would fail the test) prints exactly the expected line and exits 2."""
    case = EXPECTED[name]
    path = str(MALFORMED / name)
    assert main(["data", "validate", path, *case.get("args", [])]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [case["error"].format(path=path)] and captured.out == ""


@pytest.mark.parametrize("name", ["medmcqa_mixed_base_skip.jsonl", "mmlu_unterminated_quote.csv",
                                  "parquet_nan_option.parquet"])
def test_stats_eval_and_train_give_the_same_message(name, tiny_model_dir, tmp_path):
    """Through `python -m medtune` as a user runs it: one line, exit 2, no traceback, on every verb that reads."""
    path = str(MALFORMED / name)
    args = EXPECTED[name].get("args", [])
    want = EXPECTED[name]["error"].format(path=path)
    runs = [["data", "stats", path, *args], ["eval", "--model", str(tiny_model_dir), "--data", path, *args]]
    if name.endswith(".jsonl"):                  # train reads its data as the recipe says (skip mode here)
        recipe = write_recipe(tmp_path, tiny_model_dir, MALFORMED / name, tmp_path / "run")
        runs.append(["train", str(recipe), "data.on_bad_row=skip"])
    for run in runs:
        proc = run_cli(*run)
        assert (proc.returncode, proc.stderr.strip()) == (2, want), run


def test_skip_mode_counts_and_keeps_the_good_rows():
    path = str(MALFORMED / "medmcqa_cop_out_of_range.jsonl")
    proc = run_cli("data", "stats", path, "--on-bad-row", "skip", "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["records"] == 2 and stats["skipped_rows"] == 1
    assert "skipped 1 bad rows" in proc.stderr and ":3: cop: answer 5 out of range" in proc.stderr


def test_ambiguous_cop_asks_for_cop_base(tmp_path):
    rows = [{"id": f"q{i}", "question": f"Q{i}?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": c}
            for i, c in enumerate([1, 2, 3, 2])]
    path = tmp_path / "ambiguous.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_cli("data", "validate", str(path))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"{path}: cop: cannot tell whether answers count from 0")
    assert "pass --cop-base 0 or --cop-base 1" in proc.stderr
    for base, letters in ((1, "A 1 (25.0%)  B 2 (50.0%)  C 1 (25.0%)"), (0, "B 1 (25.0%)  C 2 (50.0%)  D 1 (25.0%)")):
        proc = run_cli("data", "stats", str(path), "--cop-base", str(base))
        assert proc.returncode == 0, proc.stderr
        assert f"by answer letter: {letters}" in proc.stdout


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = run_cli("data", "validate", str(empty))
    assert (proc.returncode, proc.stderr.strip()) == (2, f"{empty}: no records (the file is empty, or holds only a header row)")
    proc = run_cli("data", "validate", str(tmp_path / "nope.jsonl"))
    assert (proc.returncode, proc.stderr.strip()) == (2, f"{tmp_path / 'nope.jsonl'}: no such file or folder")
    proc = run_cli("data", "validate", "medmcqa-de")
    assert proc.stderr.strip() == "medmcqa-de: no such file or folder (did you mean 'medmcqa-dev'?)"


def test_stated_normalisations_where_the_intent_is_plain(tmp_path):
    """What is read as meant rather than refused: each one has a single sensible reading."""
    from medtune.data import LoadOptions, load_benchmark

    def load(name, text, **kw):
        path = tmp_path / name
        path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
        return load_benchmark(str(path), LoadOptions(cache=False, **kw))[0]

    row = {"id": "n1", "question": "Q?", "options": ["one", "two", "three"], "answer_index": 1}
    two = json.dumps({**row, "id": "n2"})
    # a BOM where two files were concatenated (`cat a.jsonl b.jsonl`), and at the start
    items = load("bom.jsonl", "\ufeff" + json.dumps(row) + "\n\ufeff" + two + "\n")
    assert [it.id for it in items] == ["n1", "n2"]
    # answers as 1.0 or " 2 " are those integers; a table's NaN subject is no subject
    items = load("numbers.jsonl", json.dumps({**row, "answer_index": 1.0}) + "\n" + json.dumps(
        {**row, "id": "n2", "answer_index": " 2 "}) + "\n" + json.dumps({**row, "id": "n3", "subject": None}) + "\n")
    assert [it.answer_index for it in items] == [1, 2, 1]
    # PubMedQA's label in any case, with spaces
    pq = {"pubid": "7", "QUESTION": "Does it?", "final_decision": " Yes ", "CONTEXTS": ["x"], "LABELS": ["A"]}
    assert load("pubmed.jsonl", json.dumps(pq) + "\n")[0].answer_index == 0
    # a lower-case answer letter; a BOM before a CSV row
    items = load("mmlu_test.csv", "\ufeffWhat?,one,two,three,four,b\n\ufeffAnd?,one,two,three,four,D\n")
    assert [it.answer_index for it in items] == [1, 3] and items[0].question == "What?"


def test_pubmedqa_ground_truth_that_is_not_a_list_of_ids(tmp_path):
    row = {"pubid": "7", "QUESTION": "Does it?", "final_decision": "yes", "CONTEXTS": ["x"], "LABELS": ["A"]}
    (tmp_path / "pqa.jsonl").write_text(json.dumps(row) + "\n")
    truth = tmp_path / "test_ground_truth.json"
    for bad in ("5", "[[1, 2]]"):
        truth.write_text(bad)
        proc_err = _validate(tmp_path / "pqa.jsonl")
        assert proc_err == (f"{truth}: expected PubMedQA's test ground truth: an object (or a list) of PubMed ids")


def _validate(path) -> str:
    """`data validate` in this process; its one line on stderr (exit 2 asserted)."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["data", "validate", str(path)]) == 2
    return err.getvalue().strip()
