"""Loaders: real benchmark files, both MedMCQA conventions, generic tables, Hub datasets (offline)."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import run_cli, shared_path
from medtune.data import LoadOptions, load_benchmark
from medtune.data.sources import BUILTIN
from medtune.errors import MedtuneError


@pytest.mark.parametrize("rel,count,letters", [
    ("data/medmcqa/dev.jsonl", 4183, {"A": 1348, "B": 1085, "C": 925, "D": 825}),
    ("data/medqa/dev.jsonl", 1272, {"A": 330, "B": 316, "C": 352, "D": 274}),
    ("data/pubmedqa/pqa_labeled.jsonl", 1000, {"A": 552, "B": 338, "C": 110}),
    ("data/mmlu_medical", 1089, {"A": 235, "B": 254, "C": 248, "D": 352}),
])
def test_real_benchmarks_load_completely(rel, count, letters):
    items, report = load_benchmark(str(shared_path(rel)))
    assert len(items) == count == report.n_records
    got = {}
    for it in items:
        got[it.answer_letter] = got.get(it.answer_letter, 0) + 1
    assert got == letters
    assert len({it.id for it in items}) == count


def test_medmcqa_fields_and_one_based_cop():
    items, report = load_benchmark(str(shared_path("data/medmcqa/dev.jsonl")))
    first = items[0]
    assert first.id == "45258d3d-b974-44dd-a161-c3fccbdadd88"
    assert first.answer_index == 0 and first.answer_letter == "A"  # cop 1 in the original release
    assert first.subject == "Physiology" and first.meta == {"choice_type": "multi"}
    assert report.sources[0].answer_base == 1


def test_medmcqa_hub_convention_zero_based(tmp_path):
    src = shared_path("data/medmcqa/dev.jsonl")
    rows = [json.loads(line) for line in src.read_text().splitlines()[:50]]
    for r in rows:
        r["cop"] -= 1  # the Hugging Face copy counts from 0
    path = tmp_path / "hf_style.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    hub, rep = load_benchmark(str(path))
    orig, _ = load_benchmark(str(src))
    assert rep.sources[0].answer_base == 0
    assert [i.answer_index for i in hub] == [i.answer_index for i in orig[:50]]


def test_medqa_five_options_and_mmlu_subjects(tmp_path):
    row = {"question": "Q?", "options": {"A": "a", "B": "b", "C": "c", "D": "d", "E": "e"},
           "answer_idx": "E", "answer": "e", "meta_info": "step1"}
    path = tmp_path / "medqa5.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (item,), _ = load_benchmark(str(path))
    assert item.options == ("a", "b", "c", "d", "e") and item.answer_letter == "E"
    items, _ = load_benchmark(str(shared_path("data/mmlu_medical/anatomy_test.csv")))
    assert {it.subject for it in items} == {"anatomy"} and len(items) == 135


def test_pubmedqa_context_and_official_split():
    path = str(shared_path("data/pubmedqa/pqa_labeled.jsonl"))
    items, _ = load_benchmark(path, LoadOptions(split="test"))
    assert len(items) == 500
    truth = json.loads(shared_path("data/pubmedqa/test_ground_truth.json").read_text())
    assert {it.id for it in items} == set(truth)
    assert all(it.options == ("yes", "no", "maybe") for it in items)
    assert all(it.answer_text == truth[it.id] for it in items)
    assert items[0].context and items[0].context.split(":")[0].isupper()
    with pytest.raises(MedtuneError, match="no records in split 'dev' \\(splits present: test, train_dev\\)"):
        load_benchmark(path, LoadOptions(split="dev"))


def test_pubmedqa_split_from_ground_truth_file(tmp_path):
    rows = [{"pubid": p, "QUESTION": f"Q{p}?", "CONTEXTS": ["c"], "LABELS": ["L"], "final_decision": "no"}
            for p in ("1", "2", "3")]
    (tmp_path / "ori.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "test_ground_truth.json").write_text(json.dumps({"2": "no"}))
    items, _ = load_benchmark(str(tmp_path / "ori.jsonl"))
    assert [it.split for it in items] == ["train_dev", "test", "train_dev"]


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet"])
def test_generic_mapping_each_table_format(tmp_path, suffix):
    rows = [{"qid": f"x{i}", "stem": f"Stem {i}?", "A": "one", "B": "two", "C": "three", "label": lab}
            for i, lab in enumerate(["B", "C", "A"])]
    path = tmp_path / f"table.{suffix}"
    if suffix == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif suffix == "csv":
        path.write_text("qid,stem,A,B,C,label\n" + "".join(",".join(r.values()) + "\n" for r in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    opts = LoadOptions(columns={"id": "qid", "question": "stem", "options": "A,B,C", "answer": "label"})
    items, report = load_benchmark(str(path), opts)
    assert [it.answer_index for it in items] == [1, 2, 0]
    assert [it.id for it in items] == ["x0", "x1", "x2"] and report.sources[0].format == "generic"


def test_generic_list_column_and_index_answers(tmp_path):
    rows = [{"q": "Q1?", "choices": ["a", "b", "c"], "gold": 0}, {"q": "Q2?", "choices": ["a", "b"], "gold": 1}]
    path = tmp_path / "lists.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items, _ = load_benchmark(str(path), LoadOptions(columns={"question": "q", "options": "choices",
                                                              "answer": "gold"}))
    assert [it.answer_index for it in items] == [0, 1]
    with pytest.raises(MedtuneError, match="unknown key 'optons' \\(did you mean 'options'\\?\\)"):
        LoadOptions(columns={"question": "q", "optons": "c", "answer": "g"})


def test_format_override(tmp_path):
    path = tmp_path / "medmcqa_as_csv.csv"
    path.write_text("id,question,opa,opb,opc,opd,cop\nq1,Q?,a,b,c,d,4\n")
    (item,), rep = load_benchmark(str(path))
    assert rep.sources[0].format == "medmcqa" and item.answer_letter == "D"
    with pytest.raises(MedtuneError, match=r"1: answer_idx: missing field|options: missing field"):
        load_benchmark(str(path), LoadOptions(format="medqa"))
    with pytest.raises(MedtuneError, match="unknown format 'medmcq' \\(did you mean 'medmcqa'\\?\\)"):
        LoadOptions(format="medmcq")


def test_hub_dataset_path_offline(tmp_path):
    """`hf:` goes through datasets.load_dataset; a local dataset folder stands in for the Hub."""
    pytest.importorskip("datasets", reason="the hub extra is not installed (the GPU-image leg has no datasets)")
    src = shared_path("data/medmcqa/dev.jsonl")
    rows = [json.loads(line) for line in src.read_text().splitlines()[:30]]
    for r in rows:
        r["cop"] -= 1
    ds_dir = tmp_path / "medmcqa_hub"
    ds_dir.mkdir()
    (ds_dir / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items, report = load_benchmark(f"hf:{ds_dir}:validation")
    assert len(items) == 30 and report.sources[0].format == "medmcqa" and report.sources[0].answer_base == 0
    orig, _ = load_benchmark(str(src))
    assert [i.answer_index for i in items] == [i.answer_index for i in orig[:30]]
    with pytest.raises(MedtuneError, match="cannot load the dataset"):
        load_benchmark("hf:no-such-owner/no-such-dataset:validation")


def test_builtin_sample_is_the_full_medmcqa_dev():
    items, _ = load_benchmark("medmcqa-dev")
    assert len(items) == 4183
    assert (BUILTIN["medmcqa-dev"].parent / "MedMCQA_LICENSE.md").is_file()


def test_data_stats_cli_counts():
    proc = run_cli("data", "stats", str(shared_path("data/mmlu_medical")))
    assert proc.returncode == 0, proc.stderr
    assert "total: 1089 records" in proc.stdout
    proc = run_cli("data", "stats", str(shared_path("data/pubmedqa/pqa_labeled.jsonl")))
    assert "total: 1000 records" in proc.stdout and "by split: test 500, train_dev 500" in proc.stdout


def test_data_commands_do_not_import_torch(tmp_path):
    code = ("import sys; from medtune.cli import main; rc = main(['data', 'validate', 'medmcqa-dev']); "
            "print('torch' in sys.modules, rc)")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "False 0"


def test_unknown_verb_exits_nonzero():
    proc = run_cli("evaluate")
    assert proc.returncode == 2 and "'evaluate'" in proc.stderr and "Traceback" not in proc.stderr
