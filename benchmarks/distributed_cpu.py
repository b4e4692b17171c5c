"""One process against two: torchrun (DDP) and, where deepspeed is installed, DeepSpeed ZeRO-2/3 through the
shipped accelerate configs, on the CPU (gloo). The shipped FSDP config is launched too and its refusal is
recorded (accelerate 1.16 sets FSDP only for accelerator process groups, accelerate/state.py:947-977;
docs/multinode.md). Same LoRA recipe on a tiny random Qwen3 (2 layers, hidden 64), same global batch (one
process: batch 4; two processes: batch 2 each). Reports per-step losses and their largest difference from
the one-process run, wall time, and each process's peak RSS (sampled every
20 ms with psutil over the launcher's process tree).

usage: python benchmarks/distributed_cpu.py OUT.json [--steps 12]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent


def tiny_model(folder: Path) -> Path:
    """A random Qwen3 (2 layers, hidden 64) with the shipped Qwen2.5 tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tok = AutoTokenizer.from_pretrained(ROOT / "medtune" / "resources" / "tokenizers" / "qwen2.5")
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    Qwen3ForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def measure(cmd: list[str], env: dict) -> dict:
    """Run cmd; wall seconds and the peak RSS (MiB) of each medtune process in its tree (not the launcher's)."""
    t0 = time.perf_counter()
    job = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, float] = {}
    root = psutil.Process(job.pid)
    while job.poll() is None:
        for p in [root, *root.children(recursive=True)]:
            try:
                line = " ".join(p.cmdline())
                if "medtune" in line and "distributed.run" not in line and "commands.launch" not in line:
                    peaks[p.pid] = max(peaks.get(p.pid, 0.0), p.memory_info().rss / 2**20)
            except psutil.Error:
                pass
        time.sleep(0.02)
    out, err = job.communicate()
    if job.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    workers = sorted(peaks.values(), reverse=True)
    return {"seconds": time.perf_counter() - t0, "peak_rss_mib": [round(v, 1) for v in workers]}


def losses(run: Path, steps: int) -> list[float]:
    state = json.loads((run / "checkpoints" / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    return [e["loss"] for e in state["log_history"] if "loss" in e]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=12)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="medtune-dist-"))
    model = tiny_model(tmp / "model")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}

    def recipe(name: str, batch: int) -> str:
        path = tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump({
            "method": "lora", "output_dir": str(tmp / name), "model": {"name": str(model)},
            "data": {"train": ["medmcqa-dev"], "max_rows": 200, "eval_size": 16, "max_length": 128},
            "lora": {"r": 8, "alpha": 16, "dropout": 0.0}, "baseline_eval": False,
            "train": {"max_steps": a.steps, "batch_size": batch, "save_steps": a.steps, "logging_steps": 1,
                      "lr": 1e-3, "group_by_length": False, "precision": "fp32"}}))
        return str(path)

    py = sys.executable
    runs = {"one-process": [py, "-m", "medtune", "train", recipe("one-process", 4)],
            "ddp-2": [py, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "medtune",
                      "train", recipe("ddp-2", 2)]}
    skipped = {}
    for z in (2, 3):
        name = f"deepspeed-zero{z}-2"
        if importlib.util.find_spec("deepspeed") is None:
            skipped[name] = "deepspeed is not installed"
            continue
        runs[name] = [py, "-m", "accelerate.commands.launch", "--config_file",
                      f"configs/accelerate/deepspeed-zero{z}.yaml", "--num_processes", "2", "--mixed_precision",
                      "no", "-m", "medtune", "train", recipe(name, 2)]
    fsdp = [py, "-m", "accelerate.commands.launch", "--config_file", "configs/accelerate/fsdp.yaml", "--num_processes",
            "2", "--mixed_precision", "no", "-m", "medtune", "train", recipe("fsdp-2", 2)]
    job = subprocess.run(fsdp, env=env, cwd=ROOT, capture_output=True, text=True)
    refused = sorted({x for x in job.stderr.splitlines() if x.startswith("medtune: error:")})
    refusals = {"fsdp-2": {"command": "accelerate launch " + " ".join(fsdp[3:-1]) + " RECIPE",
                           "exit_code": job.returncode, "refusal": refused,
                           "adapter_written": (tmp / "fsdp-2" / "adapter").exists()}}
    print("fsdp-2", json.dumps(refusals["fsdp-2"]), flush=True)
    results = {}
    for name, cmd in runs.items():
        r = measure(cmd, env)
        r["losses"] = losses(tmp / name, a.steps)
        results[name] = r
        print(name, json.dumps(r), flush=True)
    ref = results["one-process"]["losses"]
    for r in results.values():
        r["max_loss_diff_vs_one_process"] = max(abs(x - y) for x, y in zip(r["losses"], ref))
    import torch

    Path(a.out).write_text(json.dumps({
        "command": f"python benchmarks/distributed_cpu.py {a.out} --steps {a.steps}",
        "what": "LoRA r=8 on a random Qwen3 (2 layers, hidden 64, Qwen2.5 vocabulary), medmcqa-dev rows, global "
                "batch 4, fp32, CPU, one thread per process; RSS sampled every 20 ms",
        "torch": torch.__version__, "cpus": os.cpu_count(),
        "deepspeed": importlib.util.find_spec("deepspeed") is not None,
        "results": results, "skipped": skipped, "refused": refusals}, indent=1) + "\n")


if __name__ == "__main__":
    main()
