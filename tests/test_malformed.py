"""Every file in tests/data/malformed gives one `path:line: field: message` line and exit 2."""

from __future__ import annotations

import json

import pytest

from conftest import DATA, run_cli

MALFORMED = DATA / "malformed"
EXPECTED = json.loads((MALFORMED / "expected.json").read_text("utf-8"))


def test_corpus_is_large_and_complete():
    files = sorted(p.name for p in MALFORMED.iterdir() if p.name != "expected.json")
    assert len(files) >= 25
    assert files == sorted(EXPECTED)


def _check_all(verb_args):
    """Run the CLI over the corpus in one process per file and collect mismatches."""
    bad = []
    for name, case in sorted(EXPECTED.items()):
        path = str(MALFORMED / name)
        proc = run_cli(*verb_args(path), *case.get("args", []))
        want = case["error"].format(path=path)
        lines = proc.stderr.strip().splitlines()
        if proc.returncode != 2 or lines != [want] or "Traceback" in proc.stderr:
            bad.append((name, proc.returncode, proc.stderr.strip()[:500], want))
    return bad


def test_validate_reports_each_bad_row_on_one_line():
    assert _check_all(lambda p: ["data", "validate", p]) == []


@pytest.mark.parametrize("name", ["medmcqa_cop_out_of_range.jsonl", "non_utf8.jsonl", "mmlu_empty_option.csv"])
def test_stats_and_eval_give_the_same_message(name, tiny_model_dir):
    path = str(MALFORMED / name)
    want = EXPECTED[name]["error"].format(path=path)
    for args in (["data", "stats", path], ["eval", "--model", str(tiny_model_dir), "--data", path]):
        proc = run_cli(*args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == want


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
    assert (proc.returncode, proc.stderr.strip()) == (2, f"{empty}: no records (the file is empty)")
    proc = run_cli("data", "validate", str(tmp_path / "nope.jsonl"))
    assert (proc.returncode, proc.stderr.strip()) == (2, f"{tmp_path / 'nope.jsonl'}: no such file or folder")
    proc = run_cli("data", "validate", "medmcqa-de")
    assert proc.stderr.strip() == "medmcqa-de: no such file or folder (did you mean 'medmcqa-dev'?)"
