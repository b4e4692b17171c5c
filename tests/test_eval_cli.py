"""`medtune eval` end to end on a tiny random model: files on disk, limits, skips, comparisons."""

from __future__ import annotations

import json

import pytest

from conftest import DATA, run_cli


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory, tiny_model_dir, sample_jsonl):
    out = tmp_path_factory.mktemp("eval") / "run"
    proc = run_cli("eval", "--model", str(tiny_model_dir), "--data", str(sample_jsonl), "--limit", "12",
                   "--scorer", "letter", "cloze", "--out", str(out), "--batch-size", "5")
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_eval_writes_metrics_and_predictions(eval_run, sample_jsonl):
    out, proc = eval_run
    metrics = json.loads((out / "metrics.json").read_text())
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 12 == metrics["n_questions"]  # --limit: the first 12 questions
    first = [json.loads(line)["id"] for line in sample_jsonl.read_text().splitlines()[:12]]
    assert [r["id"] for r in rows] == first
    assert set(metrics["results"]) == {"letter", "cloze", "cloze_norm", "cloze_mean"}
    letter = metrics["results"]["letter"]
    assert letter["correct"] == sum(r["correct"] for r in rows)
    lo, hi = letter["ci95"]
    assert lo <= letter["accuracy"] <= hi
    for r in rows:
        assert len(r["probabilities"]) in (3, 4, 5) and sum(r["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert r["predicted"] == "ABCDE"[max(range(len(r["probabilities"])), key=r["probabilities"].__getitem__)]
        assert set(r["other_scorers"]) == {"cloze", "cloze_norm", "cloze_mean"}
    m = metrics["manifest"]
    assert m["packages"]["torch"] and m["backend"]["kind"] == "cpu" and m["seed"] == 0
    assert m["data"]["sources"][0]["sha256"] and len(m["model"]["sha256"]) == 64
    assert m["scorers"] == ["letter", "cloze"] and m["template"] == "chat"
    assert metrics["baselines"]["most_frequent_letter"]["letter"] in "ABCDE"
    assert "letter" in proc.stdout and "baselines: chance" in proc.stdout
    # tokens through the model (the chat turn and instruction once) apart from the questions' own tokens
    for scorer in ("letter", "cloze"):
        tk = metrics["timing"]["tokens"][scorer]
        assert 0 < tk["processed"] < tk["questions"] and tk["processed_per_s"] > 0
    assert "tokens through the model (shared prefix once)" in proc.stdout


def test_eval_is_deterministic(eval_run, tiny_model_dir, sample_jsonl, tmp_path):
    out, _ = eval_run
    proc = run_cli("eval", "--model", str(tiny_model_dir), "--data", str(sample_jsonl), "--limit", "12",
                   "--scorer", "letter", "--out", str(tmp_path / "again"), "--batch-size", "3")
    assert proc.returncode == 0, proc.stderr
    a = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "again" / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in a] == [r["id"] for r in b]
    for x, y in zip(a, b):  # another batch size, same numbers
        assert x["probabilities"] == pytest.approx(y["probabilities"], abs=1e-5)
        assert x["predicted"] == y["predicted"]


def test_compare_reports_mcnemar(eval_run, tmp_path):
    out, _ = eval_run
    other = tmp_path / "other"
    other.mkdir()
    metrics = json.loads((out / "metrics.json").read_text())
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    flipped = 0
    for r in rows:  # make the "new" run right wherever the base run was wrong
        if not r["correct"]:
            r["predicted"], r["correct"] = r["gold"], True
            flipped += 1
    (other / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (other / "metrics.json").write_text(json.dumps(metrics))
    proc = run_cli("eval", "--compare", str(out), str(other), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "compare.json").read_text())
    row = next(r for r in result["rows"] if r["result"] == "letter")
    assert row["mcnemar"]["a_only"] == 0 and row["mcnemar"]["b_only"] == flipped
    assert row["new"]["accuracy"] == 1.0
    assert row["mcnemar"]["p_value"] == pytest.approx(min(1.0, 2 * 0.5 ** flipped))
    assert "McNemar p" in proc.stdout


def test_skipped_rows_are_recorded(tiny_model_dir, tmp_path):
    bad = DATA / "malformed" / "medqa_answer_text_mismatch.jsonl"
    proc = run_cli("eval", "--model", str(tiny_model_dir), "--data", str(bad), "--on-bad-row", "skip",
                   "--out", str(tmp_path / "skip"))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "skip" / "metrics.json").read_text())
    assert metrics["manifest"]["data"]["skipped_rows"] == 1 and metrics["n_questions"] == 1
    assert "skipped 1 bad rows" in proc.stderr


@pytest.mark.parametrize("args,msg", [
    (["--model", "smollm2-135m-instruc"], "smollm2-135m-instruc: --model: not an embedded model "
     "(smollm2-135m-instruct, minilm-l6), a model folder or a Hub id (owner/name) (did you mean "
     "'smollm2-135m-instruct'?)"),
    (["--scorer", "lettr"], "medtune: error: --scorer: unknown scorer 'lettr' (did you mean 'letter'?); "
                            "choose from letter, cloze, generate"),
    (["--limit", "0"], "medtune: error: --limit: must be a positive number of questions, got 0"),
])
def test_eval_argument_errors(sample_jsonl, args, msg):
    proc = run_cli("eval", "--data", str(sample_jsonl), *args)
    assert proc.returncode == 2 and proc.stderr.strip() == msg


def test_hub_model_offline_error(sample_jsonl, tmp_path):
    proc = run_cli("eval", "--model", "Qwen/Qwen3-1.7B", "--data", str(sample_jsonl), "--out", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Qwen/Qwen3-1.7B: --model: cannot load:")
    assert "offline, pass a local model folder or an embedded model" in proc.stderr


def test_generate_scorer_through_evaluate_items(tmp_path, tiny_model_dir, sample_jsonl):
    """The generative scorer is one SCORERS entry: its predictions (None = unparseable, counted wrong), raw
    generations in predictions.jsonl and unparseable figures in metrics.json go through the same path."""
    from medtune.eval.run import EvalConfig, evaluate_items, load_items

    cfg = EvalConfig(data=[str(sample_jsonl)], model=str(tiny_model_dir), scorers=["generate", "letter"], limit=4,
                     batch_size=4, max_new_tokens=3, out=str(tmp_path / "gen"), progress=False)
    items, report = load_items(cfg)
    metrics = evaluate_items(cfg, items, report)
    gen = metrics["results"]["generate"]
    assert metrics["primary"] == "generate" and set(metrics["results"]) == {"generate", "letter"}
    rows = [json.loads(x) for x in (tmp_path / "gen" / "predictions.jsonl").read_text().splitlines()]
    unread = [r for r in rows if r["predicted"] is None]
    assert gen["unanswered"] == gen["unparseable"] == len(unread)
    assert gen["unparseable_rate"] == len(unread) / 4 and gen["max_new_tokens"] == 3
    assert all(r["correct"] is False for r in unread) and all("generation" in r for r in rows)
    assert gen["correct"] == sum(r["correct"] for r in rows)
    assert "letter" in rows[0]["other_scorers"]
