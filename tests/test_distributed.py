"""More than one process, launched as a user types it: `torchrun ... -m medtune train|eval ...`.

On CPUs the processes talk over gloo. torchrun exits non-zero when any of its processes does (how a rank's
`KeyError` once failed the whole job), so its exit code checks every rank; a two-"node" job checks both
launchers'. A tiny random Qwen3 (2 layers, hidden 64) trains with LoRA; the accelerate FSDP config is
launched exactly as shipped and must refuse a CPU process group instead of running plain DDP silently."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import ROOT, free_port

pytestmark = pytest.mark.slow  # each test starts two or three processes (about 20 s on 2 cores)

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread per process, one process per core
STEPS = 12


def torchrun(*args: str, nproc: int = 2, node: tuple[int, int, int] | None = None) -> list[str]:
    """`torchrun --standalone --nproc-per-node N -m medtune ARGS`, or one node (rank, nodes, port) of a
    static multi-node rendezvous on localhost."""
    where = (["--nnodes", str(node[1]), "--node-rank", str(node[0]), "--master-addr", "127.0.0.1",
              "--master-port", str(node[2])] if node else ["--standalone"])
    return [sys.executable, "-m", "torch.distributed.run", *where, "--nproc-per-node", str(nproc),
            "-m", "medtune", *args]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def recipe(tmp_path: Path, name: str, model: Path, data: Path, batch: int = 2, **extra) -> Path:
    """A LoRA recipe without dropout (ranks would draw different masks): STEPS steps, a checkpoint every 2."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "method": "lora", "output_dir": str(tmp_path / name), "model": {"name": str(model)},
        "data": {"train": [str(data)], "eval_size": 8}, "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"max_steps": STEPS, "batch_size": batch, "save_steps": 2, "logging_steps": 1, "lr": 1e-3,
                  "group_by_length": False}, **extra}))
    return path


def adapter(run_dir: Path) -> dict:
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


def losses(run_dir: Path) -> list[float]:
    state = json.loads((run_dir / "checkpoints" / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    return [e["loss"] for e in state["log_history"] if "loss" in e]


def predictions(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def ddp(tmp_path_factory, tiny_qwen3_dir, sample_jsonl) -> tuple[Path, subprocess.CompletedProcess]:
    """`torchrun --standalone --nproc-per-node 2 -m medtune train RECIPE`, uninterrupted."""
    tmp = tmp_path_factory.mktemp("ddp")
    proc = run(torchrun("train", str(recipe(tmp, "ddp", tiny_qwen3_dir, sample_jsonl))))
    return tmp / "ddp", proc


def test_torchrun_train_matches_one_process_with_the_same_global_batch(ddp, tmp_path, tiny_qwen3_dir,
                                                                        sample_jsonl):
    two, proc = ddp
    assert proc.stdout.count("wrote ") == 1 and "Traceback" not in proc.stderr  # the first process's summary
    assert proc.stdout.count("before training:") == proc.stdout.count("after training:") == 1
    run([sys.executable, "-m", "medtune", "train", str(recipe(tmp_path, "one", tiny_qwen3_dir, sample_jsonl,
                                                              batch=4))])
    one = tmp_path / "one"
    # DDP averages two half-batch gradients, one process one whole-batch gradient: equal up to float sums
    assert losses(two) == pytest.approx(losses(one), rel=1e-5) and len(losses(one)) == STEPS
    a, b = adapter(two), adapter(one)
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    for stage in ("baseline", "final"):  # each process scored a share of the questions; the first wrote all
        p2, p1 = predictions(two / stage), predictions(one / stage)
        assert [r["id"] for r in p2] == [r["id"] for r in p1] and len(p1) == 8
        assert [r["predicted"] for r in p2] == [r["predicted"] for r in p1]
        for x, y in zip(p2, p1):
            assert x["probabilities"] == pytest.approx(y["probabilities"], abs=1e-4)
    m = json.loads((two / "final" / "metrics.json").read_text())
    assert m["manifest"]["processes"] == 2


def _kill_job(job: subprocess.Popen) -> None:
    """kill -9 every process of a torchrun job (its workers run in sessions of their own)."""
    import psutil

    procs = psutil.Process(job.pid).children(recursive=True) + [psutil.Process(job.pid)]
    for p in procs:
        p.send_signal(signal.SIGKILL)
    job.wait()


def test_kill_9_of_both_processes_then_resume_gives_the_uninterrupted_adapter(ddp, tmp_path, tiny_qwen3_dir,
                                                                              sample_jsonl):
    cut = tmp_path / "ddp"
    cfg = recipe(tmp_path, "ddp", tiny_qwen3_dir, sample_jsonl)
    job = subprocess.Popen(torchrun("train", str(cfg)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=ENV, cwd=ROOT)
    marker = cut / "checkpoints" / "checkpoint-4" / "medtune-complete.json"
    deadline = time.time() + 300
    while not marker.exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    _kill_job(job)
    assert job.returncode == -signal.SIGKILL
    assert not (cut / "adapter").exists()  # it died before finishing
    done = [int(p.name.split("-")[1]) for p in (cut / "checkpoints").glob("checkpoint-*")]
    assert 4 <= max(done) < STEPS
    for p in (cut / "checkpoints").glob("checkpoint-*"):  # the marker is written once, by the first process
        if (p / "medtune-complete.json").exists():
            assert (p / "rng_state_0.pth").is_file() and (p / "rng_state_1.pth").is_file()

    proc = run(torchrun("train", str(cfg), "--resume"))
    assert proc.stdout.count("resuming from") == 1
    assert not list((cut / "checkpoints").glob("checkpoint-*/")) or all(
        (p / "medtune-complete.json").is_file() for p in (cut / "checkpoints").glob("checkpoint-*"))
    a, b = adapter(ddp[0]), adapter(cut)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-7)
    assert losses(cut)[-4:] == pytest.approx(losses(ddp[0])[-4:], rel=1e-6)


def test_two_nodes_on_one_machine_match_one_two_process_node(ddp, tmp_path, tiny_qwen3_dir, sample_jsonl):
    """`torchrun --nnodes 2 --node-rank 0|1 --nproc-per-node 1` (a static rendezvous on localhost), the run
    folder shared as on a cluster file system: the same losses, adapter and predictions as one node."""
    cfg = str(recipe(tmp_path, "ddp", tiny_qwen3_dir, sample_jsonl))
    port = free_port()
    nodes = [subprocess.Popen(torchrun("train", cfg, nproc=1, node=(r, 2, port)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT) for r in (0, 1)]
    outs = [n.communicate(timeout=600) for n in nodes]
    for n, (out, err) in zip(nodes, outs):
        assert n.returncode == 0, out[-2000:] + err[-3000:]
    assert outs[0][0].count("wrote ") == 1 and "wrote " not in outs[1][0]  # node 0's first process writes
    assert losses(tmp_path / "ddp") == losses(ddp[0])
    a, b = adapter(tmp_path / "ddp"), adapter(ddp[0])
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert predictions(tmp_path / "ddp" / "final") == predictions(ddp[0] / "final")


def test_two_process_generative_eval_writes_what_one_process_writes(tmp_path, tiny_qwen3_dir, sample_jsonl):
    """`torchrun ... -m medtune eval --scorer generate`: each process generates whole batches of the
    one-process order, so the generations, predictions.jsonl and the metrics are the same."""
    args = ["eval", "--model", str(tiny_qwen3_dir), "--data", str(sample_jsonl), "--limit", "9", "--scorer",
            "generate", "--max-new-tokens", "6", "--batch-size", "2"]
    run([sys.executable, "-m", "medtune", *args, "--out", str(tmp_path / "one")])
    proc = run(torchrun(*args, "--out", str(tmp_path / "two")))
    assert proc.stdout.count("baselines: chance") == 1
    a, b = predictions(tmp_path / "one"), predictions(tmp_path / "two")
    assert len(a) == 9 and a == b
    m1, m2 = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("one", "two"))
    assert m1["results"] == m2["results"] and m2["manifest"]["processes"] == 2


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_through_the_shipped_config_trains_as_ddp_does(stage, ddp, tmp_path, tiny_qwen3_dir,
                                                                    sample_jsonl):
    """`accelerate launch --config_file configs/accelerate/deepspeed-zero{2,3}.yaml -m medtune train`, two CPU
    processes on DeepSpeed's CPU accelerator (gloo): the per-step losses and adapter of the DDP run, and
    DeepSpeed's own checkpoint (under ZeRO-3, one partition of the weights per process)."""
    pytest.importorskip("deepspeed")
    cfg = recipe(tmp_path, "ddp", tiny_qwen3_dir, sample_jsonl)
    proc = run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                f"configs/accelerate/deepspeed-zero{stage}.yaml", "--num_processes", "2", "--mixed_precision", "no",
                "--main_process_port", str(free_port()), "-m", "medtune", "train", str(cfg)])
    assert proc.stdout.count("wrote ") == 1
    out = tmp_path / "ddp"
    own = out / "checkpoints" / f"checkpoint-{STEPS}" / f"global_step{STEPS}"  # DeepSpeed's checkpoint
    assert (own / "zero_pp_rank_1_mp_rank_00_optim_states.pt").is_file()
    if stage == 3:
        assert (own / "zero_pp_rank_1_mp_rank_00_model_states.pt").is_file()
    assert losses(out) == pytest.approx(losses(ddp[0]), rel=1e-5)
    a, b = adapter(out), adapter(ddp[0])
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)


def test_the_fsdp_config_refuses_cpu_processes_instead_of_running_plain_ddp(tmp_path, tiny_qwen3_dir,
                                                                            sample_jsonl):
    """`accelerate launch --config_file configs/accelerate/fsdp.yaml -m medtune train ...` on CPUs: accelerate
    sets DistributedType.FSDP only inside its accelerator branch (accelerate 1.16, state.py:947-977); a gloo
    group is MULTI_CPU and gets DDP (accelerator.py:2030), so every process stops with one line naming that
    rather than train unsharded under an FSDP config (docs/multinode.md)."""
    cfg = recipe(tmp_path, "fsdp", tiny_qwen3_dir, sample_jsonl, baseline_eval=False)
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           "configs/accelerate/fsdp.yaml", "--num_processes", "2", "--main_process_port",
                           str(free_port()), "-m", "medtune", "train", str(cfg)],
                          capture_output=True, text=True, env=ENV, timeout=600, cwd=ROOT)
    assert proc.returncode != 0
    line = ("medtune: error: distributed_type: the accelerate config asks for FSDP, but accelerate sets FSDP only "
            "for GPU/XPU/NPU process groups (accelerate/state.py, AcceleratorState) and these processes are "
            "MULTI_CPU, which it would train as plain data parallel; on CPUs launch with torchrun "
            "(docs/multinode.md); this config is for GPUs")
    assert proc.stderr.count(line) == 2
    assert not (tmp_path / "fsdp" / "checkpoints").exists() or not list((tmp_path / "fsdp" / "checkpoints").iterdir())
