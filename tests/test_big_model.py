"""Models larger than one device: `--device-map auto --max-memory ...` (accelerate big-model inference).
On the CPU a budget below the model's size forces the split: the embeddings and the first layer in CPU
memory, the rest offloaded to disk and streamed in per forward pass; the answers equal the whole model's."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli


def _rows(folder) -> list[dict]:
    return [json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.slow  # four CLI runs
def test_a_model_split_across_cpu_and_disk_answers_as_the_whole_model(tmp_path, tiny_qwen3_dir, sample_jsonl):
    budget = f"cpu={int((tiny_qwen3_dir / 'model.safetensors').stat().st_size * 0.8 / 1000)}KB"
    args = ["eval", "--model", str(tiny_qwen3_dir), "--data", str(sample_jsonl), "--limit", "6", "--scorer",
            "letter", "generate", "--max-new-tokens", "5", "--batch-size", "3"]
    whole = run_cli(*args, "--out", str(tmp_path / "whole"), env={"OMP_NUM_THREADS": "1"})
    assert whole.returncode == 0, whole.stderr[-2000:]
    split = run_cli(*args, "--device-map", "auto", "--max-memory", budget, "--out", str(tmp_path / "split"),
                    env={"OMP_NUM_THREADS": "1"})
    assert split.returncode == 0, split.stderr[-2000:]
    assert "medtune: --device-map auto placed the model's modules: cpu 2 · disk 4" in split.stderr
    a, b = _rows(tmp_path / "whole"), _rows(tmp_path / "split")
    assert len(a) == 6 and [r["predicted"] for r in a] == [r["predicted"] for r in b]
    for x, y in zip(a, b):
        assert x["probabilities"] == pytest.approx(y["probabilities"], abs=1e-6)  # float32 sums, in another order
        assert x["other_scorers"]["generate"] == y["other_scorers"]["generate"]  # the same generations

    q = ["--model", str(tiny_qwen3_dir), "-q", "Which drug number 3 treats condition 3?", "-o", "option 0 for drug 3",
         "-o", "option 1 for drug 3", "-o", "option 2 for drug 3", "--json", "--device", "cpu"]
    one, two = run_cli("ask", *q), run_cli("ask", *q, "--device-map", "balanced", "--max-memory", budget)
    assert one.returncode == two.returncode == 0, one.stderr[-1000:] + two.stderr[-1000:]
    x, y = json.loads(one.stdout)["answers"][0], json.loads(two.stdout)["answers"][0]
    assert x["answer"] == y["answer"] and x["probabilities"] == pytest.approx(y["probabilities"], abs=1e-6)


@pytest.mark.parametrize("flags, message", [
    (["--max-memory", "cpu=1GiB"], "medtune: error: --max-memory: --max-memory budgets a split model: give "
                                   "--device-map auto (or balanced) too"),
    (["--device-map", "atuo"], "medtune: error: --device-map: unknown device map 'atuo' (did you mean 'auto'?); "
                               "choose auto, balanced, balanced_low_0, sequential"),
    (["--device-map", "auto", "--max-memory", "gpu0=10GB"], "medtune: error: --max-memory: expected DEVICE=SIZE such "
                                                            "as 0=70GiB, cpu=200GiB or mps=30GiB, got 'gpu0=10GB'"),
])
def test_device_map_flags_are_checked_before_loading(flags, message, tmp_path, sample_jsonl):
    proc = run_cli("eval", "--model", str(tmp_path), "--data", str(sample_jsonl), *flags)
    assert proc.returncode != 0 and proc.stderr.strip() == message
