"""Shared fixtures. Models here are tiny and random, built from real architecture configs
(LlamaConfig, Qwen3Config): they test the machinery, never accuracy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DATA = Path(__file__).resolve().parent / "data"

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def medtune_sources() -> list[tuple[str, str]]:
    """(path relative to the repository, text) of every module of the medtune package."""
    package = ROOT / "medtune"
    return [(str(p.relative_to(ROOT)), p.read_text("utf-8")) for p in sorted(package.rglob("*.py"))]


def shared_path(rel: str) -> Path:
    """A path under ../shared, skipping the test when that folder is absent."""
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"{p} is not available")
    return p


def run_cli(*args: str, cwd: str | os.PathLike | None = None, env: dict | None = None,
            timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m medtune ARGS` in a fresh process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "medtune", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout)


def write_recipe(tmp_path: Path, model_dir: Path, data: Path, out: Path, *, dropout: float = 0.0,
                 **train) -> Path:
    """A small LoRA recipe for a tiny local model (8 questions held out), written to tmp_path; `train`
    keys override the train section (max_steps 4, batch 4, a checkpoint every 2 steps, lr 1e-3)."""
    import yaml

    recipe = {
        "method": "lora", "output_dir": str(out), "model": {"name": str(model_dir)},
        "data": {"train": [str(data)], "eval_size": 8},
        "lora": {"r": 4, "alpha": 8, "dropout": dropout},
        "train": {"max_steps": 4, "batch_size": 4, "save_steps": 2, "logging_steps": 1, "lr": 1e-3, **train},
    }
    path = tmp_path / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _sample_items(n: int = 40) -> list[dict]:
    rows = []
    for i in range(n):
        k = 3 + (i % 3)  # 3 to 5 options
        rows.append({"id": f"t{i:03d}", "question": f"Which drug number {i} treats condition {i % 7}?",
                     "options": [f"option {j} for drug {i}" + (" extra words" * (j % 2)) for j in range(k)],
                     "answer_index": i % k, "subject": ["Pharmacology", "Anatomy"][i % 2],
                     "explanation": f"Because drug {i} is used."})
    return rows


@pytest.fixture(scope="session")
def sample_jsonl(tmp_path_factory) -> Path:
    """A small medtune-format JSONL file with 3- to 5-option questions."""
    path = tmp_path_factory.mktemp("data") / "sample.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _sample_items()))
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A byte-level BPE tokenizer trained here, with a ChatML chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [r["question"] + " " + " ".join(r["options"]) for r in _sample_items()] + [
        "Answer: A B C D E The following is a multiple-choice question about medicine."] * 5
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None)
    fast.chat_template = CHATML
    return fast


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A tiny random LlamaForCausalLM (real architecture, 2 layers) saved as a HF folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=tiny_tokenizer.pad_token_id, eos_token_id=tiny_tokenizer.eos_token_id,
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_qwen3_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A tiny random Qwen3ForCausalLM (real architecture: 2 layers, hidden 64) saved as a HF folder."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=len(tiny_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                      pad_token_id=tiny_tokenizer.pad_token_id, eos_token_id=tiny_tokenizer.eos_token_id,
                      tie_word_embeddings=False)
    folder = tmp_path_factory.mktemp("tiny-qwen3")
    Qwen3ForCausalLM(cfg).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model_dir, sample_jsonl) -> Path:
    """A finished LoRA run of the tiny random Llama (baseline, adapter, final eval, compare): something to
    ask, serve, report and push. Its accuracies mean nothing; the machinery is what is tested."""
    import yaml

    tmp = tmp_path_factory.mktemp("tiny-run")
    out = tmp / "run"
    recipe = {"method": "lora", "output_dir": str(out), "model": {"name": str(tiny_model_dir)},
              "data": {"train": [str(sample_jsonl)], "eval_size": 10},
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
              "train": {"max_steps": 4, "batch_size": 4, "save_steps": 4, "logging_steps": 1, "lr": 1e-2}}
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    proc = run_cli("train", str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def sample_questions(tiny_run: Path, sample_jsonl: Path) -> list[dict]:
    """The eval questions of a tiny run, as {id, question, options} in its predictions' order."""
    by_id = {r["id"]: r for r in map(json.loads, sample_jsonl.read_text().splitlines())}
    preds = [json.loads(line) for line in (tiny_run / "final" / "predictions.jsonl").read_text().splitlines()]
    return [{"id": p["id"], "question": by_id[p["id"]]["question"], "options": by_id[p["id"]]["options"]}
            for p in preds]


@pytest.fixture(scope="module")
def questions(tiny_run, sample_jsonl):
    """The tiny run's eval questions (sample_questions), for the serving tests."""
    return sample_questions(tiny_run, sample_jsonl)


@pytest.fixture(scope="module")
def answerer(tiny_run):
    """The tiny run's Answerer on the CPU, loaded once per test module."""
    from medtune.serve.answer import Answerer, source_from_run

    return Answerer(source_from_run(str(tiny_run)), device="cpu")


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    """The system Chromium for browser tests: required under CI (which installs it), else skip."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("CI must install Debian's chromium for the browser tests (see .ci/run)")
    pytest.skip("no chromium on this machine (apt-get install chromium)")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The tests CI's floor and GPU-image legs run (`python -m pytest -m stack`): what the version matrix must
# show works on every declared stack — training (LoRA, packing, the encoder, GRPO, torchrun DDP), resume after kill -9,
# export, eval (letter, cloze, generate, suite, permuted orders), ask, the embedded model, data loaders (Parquet, Hub
# datasets) and the prepared GPU run's smoke. The newest leg runs every test. Each entry is a node id or
# its prefix; one that matches no test of a collected file is an error, so the list cannot rot.
STACK_TESTS = (
    "tests/test_backend.py::test_doctor_",
    "tests/test_backend.py::test_tested_floors_are_the_declared_lower_bounds",
    "tests/test_train_lean.py::test_head_on_labels_",
    "tests/test_train_lean.py::test_packed_example_loss_equals_its_loss_alone",
    "tests/test_train.py::test_kill_9_then_resume_gives_the_same_adapter",
    "tests/test_train.py::test_export_merge_scores_the_same",
    "tests/test_train.py::test_packing_gives_the_same_loss_as_padding",
    "tests/test_train.py::test_encoder_multiple_choice_recipe",
    "tests/test_train.py::test_demo_runs_end_to_end_small",
    "tests/test_grpo.py::test_cpu_smoke_recipe_end_to_end",
    "tests/test_eval_cli.py::test_eval_writes_metrics_and_predictions",
    "tests/test_eval_cli.py::test_generate_scorer_through_evaluate_items",
    "tests/test_scoring.py::test_matches_lm_eval_rule_tiny_llama",
    "tests/test_scoring.py::test_cloze_scores_equal_the_full_log_softmax_implementation",
    "tests/test_suite.py::test_cli_suite_prints_nine_rows_and_writes_lm_eval_results",
    "tests/test_serve.py::test_ask_cli_is_deterministic_and_matches_eval_predictions",
    "tests/test_embedded.py::test_embedded_model_converts_once_and_evaluates",
    "tests/test_data_loaders.py::",
    "tests/test_gpu_smoke.py::test_smoke_run_on_the_cpu",
    "tests/test_sampling.py::test_length_grouping_",
    "tests/test_distributed.py::test_torchrun_train_matches_one_process_with_the_same_global_batch",
    "tests/test_robustness.py::test_unrotated_pass_equals_a_plain_eval",
)


def pytest_collection_modifyitems(config, items):
    """Mark the version matrix's subset (`-m stack`) and refuse an entry that names no collected test."""
    files = {item.nodeid.split("::")[0] for item in items}
    used = set()
    for item in items:
        for entry in STACK_TESTS:
            if item.nodeid.startswith(entry):
                item.add_marker(pytest.mark.stack)
                used.add(entry)
    whole = all(Path(a).resolve() == ROOT / "tests" for a in config.args)  # a run of the whole suite
    stale = [e for e in STACK_TESTS if e.split("::")[0] in files and e not in used]
    if whole and stale:
        raise pytest.UsageError(f"tests/conftest.py STACK_TESTS names no test: {', '.join(stale)}")
