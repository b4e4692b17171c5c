"""`bash benchmarks/gpu.sh --smoke`: the prepared GPU run, on the CPU with a tiny random Qwen3, so that it
cannot rot while no GPU is at hand. It must exit 0, write each group's files (at most 8 a group), leave
optional packages as skipped with a reason, and never call pip."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

from conftest import ROOT

GPU_SH = ROOT / "benchmarks" / "gpu.sh"


def test_each_group_states_its_expected_seconds_within_eight_minutes():
    header = GPU_SH.read_text().split("set -uo pipefail")[0]
    expected = {int(g): int(s) for g, s in re.findall(r"^#\s+(\d)\s+~(\d+) s", header, flags=re.M)}
    assert sorted(expected) == [1, 2, 3]
    assert all(0 < s <= 480 for s in expected.values()), expected  # never calling pip: the smoke run's fake pip


def test_smoke_run_on_the_cpu(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "pip-calls.txt"
    for name in ("pip", "pip3"):  # a pip that records being called
        script = fake_bin / name
        script.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {calls}\nexit 1\n")
        script.chmod(0o755)
    out = tmp_path / "results"
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}", "MEDTUNE_GPU_OUT": str(out),
           "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}  # the interpreter running the tests
    proc = subprocess.run(["bash", str(GPU_SH), "--smoke"], capture_output=True, text=True, env=env,
                          cwd=str(tmp_path), timeout=1800)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert not calls.exists(), calls.read_text()
    # the lm-eval comparison runs where lm_eval is installed and ../shared/data lies beside the checkout
    lm_eval_here = importlib.util.find_spec("lm_eval") is not None and (ROOT.parent / "shared" / "data").is_dir()
    for g, files in {1: {"doctor", "train-vs-hackathon", "plan-vs-measured", "eval-medmcqa-dev", "parity",
                         "summary"},
                     2: {"train-bs4", "eval-bs16", "summary"},
                     3: {"summary"} | ({"vs-lm-eval"} if lm_eval_here else set())}.items():
        written = sorted(out.glob(f"gpu{g}-*"))
        assert len(written) <= 8, written
        assert {p.name.split("-", 1)[1].rsplit(".", 1)[0] for p in written} == files | {"log"}
        summary = json.loads((out / f"gpu{g}-summary.json").read_text())
        assert summary["device"].startswith("CPU") and summary["commit"]
        statuses = {s["name"]: s["status"] for s in summary["steps"]}
        assert set(statuses.values()) <= {"ok", "skipped"}, summary["steps"]
    g1 = json.loads((out / "gpu1-summary.json").read_text())["figures"]
    runs = g1["train-vs-hackathon"]["runs"]
    assert [r["recipe"] for r in runs] == ["qwen3-1.7b-medmcqa-lora", "hackathon-baseline"]
    assert all(r["tokens_per_s"] > 0 and 0 < r["mfu"] for r in runs)
    assert g1["eval-medmcqa-dev"][0]["questions"] == 16
    assert g1["parity"]["float32"]["met"] and g1["parity"]["what"].startswith("no GPU here")
    skipped = {s["name"]: s["note"] for s in json.loads((out / "gpu3-summary.json").read_text())["steps"]}
    assert skipped["train-fp8"] == "fp8 training needs an FP8 GPU (sm_89+, gfx942/gfx950)"
    if lm_eval_here:
        vs = json.loads((out / "gpu3-vs-lm-eval.json").read_text())
        assert list(vs["tasks"]) == ["medmcqa"] and vs["tasks"]["medmcqa"]["n"] == 4, vs["tasks"]
        assert vs["identical_predictions"] == 4 and vs["identical_prompts"] == 4, vs
    else:
        assert "vs-lm-eval" in skipped
    assert "medtune gpu.sh: groups 1 2 3 took" in proc.stdout
