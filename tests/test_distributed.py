"""Two CPU processes (gloo) train in step, and match one process with the same global batch.

torchrun is the launcher `accelerate launch --multi_gpu` (configs/accelerate/ddp.yaml) uses underneath;
accelerate's own --cpu mode runs one process unless MPI is installed, so the test calls torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import ROOT

HARNESS = str(ROOT / "tests" / "helpers" / "train_and_dump.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _recipe(tmp_path, name, model, data, batch):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "method": "lora", "output_dir": str(tmp_path / name), "baseline_eval": False,
        "model": {"name": str(model)}, "data": {"train": [str(data)], "eval_size": 8},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},  # no dropout: ranks draw different random masks
        "train": {"max_steps": 4, "batch_size": batch, "save_steps": 4, "lr": 1e-3, "group_by_length": False},
    }))
    return path


def test_two_processes_train_in_step_and_match_one_process(tmp_path, tiny_model_dir, sample_jsonl):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = _recipe(tmp_path, "ddp", tiny_model_dir, sample_jsonl, batch=2)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), HARNESS, str(two)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = _recipe(tmp_path, "single", tiny_model_dir, sample_jsonl, batch=4)  # the same global batch
    proc = subprocess.run([sys.executable, HARNESS, str(one)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    r0 = load_file(str(tmp_path / "ddp" / "checkpoints" / "rank0.safetensors"))
    r1 = load_file(str(tmp_path / "ddp" / "checkpoints" / "rank1.safetensors"))
    single = load_file(str(tmp_path / "single" / "checkpoints" / "rank0.safetensors"))
    assert r0.keys() == r1.keys() == single.keys() and len(r0) > 0
    moved = False
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0)  # DDP keeps ranks bit-identical
        torch.testing.assert_close(r0[k], single[k], rtol=1e-4, atol=1e-6)
        moved |= bool((r0[k] != 0).any())
    assert moved
    assert (tmp_path / "ddp" / "adapter" / "adapter_model.safetensors").is_file()  # rank 0 saved the result


def test_two_processes_share_an_eval_and_match_one_process(tmp_path, tiny_model_dir, sample_jsonl):
    """`torchrun --nproc_per_node 2 -m medtune eval`: each process scores half the questions (accelerate's
    process group, gloo), the first one writes; the files equal a one-process eval's."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["eval", "--model", str(tiny_model_dir), "--data", str(sample_jsonl), "--limit", "13",
            "--scorer", "letter", "cloze", "--batch-size", "3"]
    one = subprocess.run([sys.executable, "-m", "medtune", *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                          "-m", "medtune", *args, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("baselines: chance") == 1  # one table, from the first process

    def rows(name):
        return [json.loads(x) for x in (tmp_path / name / "predictions.jsonl").read_text().splitlines()]

    a, b = rows("one"), rows("two")
    assert len(a) == len(b) == 13 and [r["id"] for r in a] == [r["id"] for r in b]
    for x, y in zip(a, b):
        assert x["predicted"] == y["predicted"] and x["probabilities"] == pytest.approx(y["probabilities"], abs=1e-5)
        for name, other in x["other_scorers"].items():
            assert other["predicted"] == y["other_scorers"][name]["predicted"]
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m1["results"]["letter"]["accuracy"] == m2["results"]["letter"]["accuracy"]
    assert m1["manifest"]["processes"] == 1 and m2["manifest"]["processes"] == 2
    assert m2["manifest"]["backend"]["threads"] == 1
