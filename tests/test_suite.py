"""`medtune eval --suite`: nine leaderboard tasks on local data with one tiny random model, one table,
the unweighted average, and lm-eval's results JSON; suites as user YAML files."""

from __future__ import annotations

import json

import pytest

from conftest import shared_path
from medtune.errors import MedtuneError
from medtune.eval.lmeval import acc_stderr
from medtune.eval.run import EvalConfig
from medtune.eval.suite import format_suite, load_suite, resolve_task, run_suite

NINE = ["medmcqa", "medqa_4options", "pubmedqa", "mmlu_anatomy", "mmlu_clinical_knowledge", "mmlu_college_biology",
        "mmlu_college_medicine", "mmlu_medical_genetics", "mmlu_professional_medicine"]


def test_builtin_suite_names_the_hub_datasets_lm_eval_uses():
    s = load_suite("open-medical-llm")
    assert [t.name for t in s.tasks] == NINE and s.template == "lm-eval" and s.scorer == "letter"
    by = {t.name: t for t in s.tasks}
    assert by["medmcqa"].source == "hf:openlifescienceai/medmcqa:validation"
    assert by["medqa_4options"].source == "hf:GBaker/MedQA-USMLE-4-options-hf:test"
    assert by["pubmedqa"].source == "hf:bigbio/pubmed_qa:pubmed_qa_labeled_fold0_source:test"
    assert by["mmlu_anatomy"].source == "hf:cais/mmlu:anatomy:test"
    # without a data folder every task goes to the Hub
    r = resolve_task(by["medqa_4options"], None)
    assert (r.kind, r.spec, r.split, r.note) == ("hub", "hf:GBaker/MedQA-USMLE-4-options-hf:test", "test", "")


def test_nine_tasks_on_local_data(tmp_path, tiny_model_dir):
    data = shared_path("data")
    cfg = EvalConfig(model=str(tiny_model_dir), limit=3, batch_size=4, out=str(tmp_path / "suite"), progress=False)
    summary = run_suite("open-medical-llm", cfg, data_dir=str(data))
    table = format_suite(summary)
    lines = table.splitlines()
    assert [line.split()[0] for line in lines[2:11]] == NINE
    assert lines[11].startswith("average (unweighted)")
    accs = [r["accuracy"] for r in summary["tasks"]]
    assert summary["average"] == pytest.approx(sum(accs) / 9)
    assert f"{summary['average']:.3f}" in lines[11]
    by = {r["task"]: r for r in summary["tasks"]}
    assert by["medqa_4options"]["note"] == "dev instead of test" and "dev instead of test" in table
    assert by["pubmedqa"]["split"] == "test" and by["pubmedqa"]["n_total"] == 500  # the official test set
    assert by["mmlu_anatomy"]["n_total"] == 135 and all(r["n"] == 3 for r in summary["tasks"])
    assert all(r["kind"] == "local" for r in summary["tasks"])

    out = tmp_path / "suite"
    res = json.loads((out / "results.json").read_text())
    assert list(res["results"]) == NINE
    med = res["results"]["medmcqa"]
    assert med["acc,none"] == by["medmcqa"]["accuracy"] == med["acc_norm,none"]
    assert med["acc_stderr,none"] == pytest.approx(acc_stderr(by["medmcqa"]["accuracy"], 3))
    assert "acc_norm,none" not in res["results"]["pubmedqa"]
    assert res["n-samples"]["pubmedqa"] == {"original": 500, "effective": 3}
    assert res["n-shot"]["mmlu_anatomy"] == 0 and res["medtune"]["average"] == summary["average"]
    # each task is an ordinary eval folder, rendered with lm-eval's own prompt
    rows = [json.loads(x) for x in (out / "mmlu_anatomy" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    metrics = json.loads((out / "pubmedqa" / "metrics.json").read_text())
    assert metrics["manifest"]["template"] == "lm-eval" and metrics["n_questions"] == 3
    assert json.loads((out / "suite.json").read_text())["tasks"][0]["task"] == "medmcqa"


def test_user_suite_file_with_task_data(tmp_path, tiny_model_dir, sample_jsonl):
    (tmp_path / "q.jsonl").write_text(sample_jsonl.read_text())
    (tmp_path / "mine.yaml").write_text("name: mine\ntemplate: plain\ntasks:\n  sample:\n    data: q.jsonl\n"
                                        "    split: all\n")
    cfg = EvalConfig(model=str(tiny_model_dir), limit=5, batch_size=4, progress=False)
    summary = run_suite(str(tmp_path / "mine.yaml"), cfg)
    (row,) = summary["tasks"]
    assert (row["task"], row["kind"], row["data"], row["n"]) == ("sample", "task data", str(tmp_path / "q.jsonl"), 5)
    assert summary["template"] == "plain" and summary["average"] == row["accuracy"]


def test_suite_errors(tmp_path):
    with pytest.raises(MedtuneError, match="unknown suite 'open-medical-lm' \\(did you mean 'open-medical-llm'"):
        load_suite("open-medical-lm")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  t:\n    dta: x.jsonl\n")
    with pytest.raises(MedtuneError, match="bad.yaml: tasks.t.dta: unknown key 'dta' \\(did you mean 'data'"):
        load_suite(str(bad))


def test_cli_suite_prints_nine_rows_and_writes_lm_eval_results(tmp_path, tiny_model_dir):
    from conftest import run_cli

    data = shared_path("data")
    out = tmp_path / "cli-suite"
    proc = run_cli("eval", "--suite", "open-medical-llm", "--data-dir", str(data), "--model", str(tiny_model_dir),
                   "--limit", "2", "--batch-size", "4", "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines[2:11]] == NINE and lines[11].startswith("average (unweighted)")
    assert "local" in lines[3] and "dev instead of test" in lines[3]  # MedQA ran on dev, and says so
    res = json.loads((out / "results.json").read_text())
    assert set(res["results"]) == set(NINE) and all("acc,none" in r for r in res["results"].values())
    bad = run_cli("eval", "--suite", "open-medical-llm", "--data", "x.jsonl")
    assert bad.returncode != 0 and "--data: --suite names its own data" in bad.stderr


def test_cli_suite_with_permute_reports_each_tasks_order_figures(tmp_path, tiny_model_dir, sample_jsonl):
    """`medtune eval --suite FILE --permute cyclic`: per task, the permutation-averaged accuracy and the spread
    over orders in the table, suite.json and results.json, equal to a plain `medtune eval --permute cyclic`
    of that task's questions."""
    from conftest import run_cli

    lines = sample_jsonl.read_text().splitlines()
    (tmp_path / "first.jsonl").write_text("\n".join(lines[:20]) + "\n")
    (tmp_path / "last.jsonl").write_text("\n".join(lines[20:]) + "\n")
    (tmp_path / "two.yaml").write_text("name: two\ntemplate: plain\ntasks:\n  first:\n    data: first.jsonl\n"
                                       "  last:\n    data: last.jsonl\n")
    common = ["--model", str(tiny_model_dir), "--batch-size", "4", "--no-progress", "--permute", "cyclic"]
    proc = run_cli("eval", "--suite", str(tmp_path / "two.yaml"), *common, "--out", str(tmp_path / "suite"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "suite" / "suite.json").read_text())
    assert summary["permute"] == "cyclic" and summary["manifest"]["permute"] == "cyclic"
    out = proc.stdout.splitlines()
    assert "option orders cyclic" in out[0] and out[1].split()[:5] == ["task", "accuracy", "95%", "CI", "perm-avg"]
    res = json.loads((tmp_path / "suite" / "results.json").read_text())["medtune"]
    for k, task in enumerate(("first", "last")):
        plain = run_cli("eval", "--data", str(tmp_path / f"{task}.jsonl"), "--template", "plain", *common,
                        "--out", str(tmp_path / task))
        assert plain.returncode == 0, plain.stderr[-3000:]
        m = json.loads((tmp_path / task / "metrics.json").read_text())
        p = m["permutation"]["letter"]
        row = summary["tasks"][k]
        assert row["task"] == task and row["n"] == 20 and row["accuracy"] == m["results"]["letter"]["accuracy"]
        got = row["permutation"]
        assert got["orders"] == p["orders"] == 5 and got["per_order"] == [o["accuracy"] for o in p["per_order"]]
        assert got["averaged_accuracy"] == p["averaged"]["accuracy"] and got["spread"] == p["spread"]
        assert got["spread"] == max(got["per_order"]) - min(got["per_order"])
        assert (got["correct_every_order"], got["consistency"]) == (p["correct_every_order"], p["consistency"])
        assert res["permutation"][task] == got
        cols = out[2 + k].split()
        assert cols[0] == task and cols[4:6] == [f"{p['averaged']['accuracy']:.3f}", f"{p['spread']:.3f}"]
    avg = summary["average_permutation"]
    assert avg["averaged_accuracy"] == pytest.approx(sum(r["permutation"]["averaged_accuracy"]
                                                         for r in summary["tasks"]) / 2)
    assert out[4].startswith("average (unweighted)") and f"{avg['averaged_accuracy']:.3f}" in out[4]
