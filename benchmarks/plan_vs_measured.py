"""Check `medtune plan` against measured peak memory of one LoRA training step.

CPU: the kernel's peak-RSS counter is reset (/proc/self/clear_refs) before the second optimizer step
and read (VmHWM) after it, minus the RSS before the model was built. CUDA/ROCm:
torch.cuda.max_memory_allocated over the second step. The model is random, built from a real
architecture config (Qwen3), so the figures say nothing about accuracy.

usage: python benchmarks/plan_vs_measured.py --device cpu|cuda --shape tiny|qwen3-1.7b --batches 1,4 \
           [--seq-len 512] [--grad-ckpt] [--out benchmarks/results/plan-vs-measured-cpu.json]
Each configuration runs in a fresh process (MALLOC_MMAP_THRESHOLD_ pinned so freed tensors leave).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

TINY = {"model_type": "qwen3", "vocab_size": 32000, "hidden_size": 256, "intermediate_size": 768,
        "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
        "tie_word_embeddings": True, "max_position_embeddings": 4096}


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def measure(shape: dict, device: str, batch: int, seq_len: int, grad_ckpt: bool) -> float:
    """Peak GiB of one LoRA training step (the second), as the device or the kernel reports it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3Config, Qwen3ForCausalLM

    base_rss = rss_kib("VmRSS")
    torch.manual_seed(0)
    cfg = Qwen3Config(**{k: v for k, v in shape.items() if k != "model_type"}, use_cache=False)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    with torch.device(device if device != "cpu" else "cpu"):
        model = Qwen3ForCausalLM(cfg).to(dtype)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear"))
    if grad_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq_len), device=device)

    def step() -> None:
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device != "cpu"):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # allocates the optimizer state
    if device == "cpu":
        Path("/proc/self/clear_refs").write_text("5")
        step()
        return (rss_kib("VmHWM") - base_rss) / 2 ** 20
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2 ** 30


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--shape", default="tiny")
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--grad-ckpt", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.shape == "tiny":
        shape = TINY
    else:
        shape = json.loads((Path(__file__).resolve().parent.parent / "medtune" / "resources" / "shapes" / args.shape
                            / "config.json").read_text())
    if args.one:
        print(json.dumps(measure(shape, args.device, int(args.batches), args.seq_len, args.grad_ckpt)))
        return
    from medtune.plan import Arch, estimate

    arch = Arch.from_config(shape)
    rows = []
    for b in (int(x) for x in args.batches.split(",")):
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
        cmd = [sys.executable, __file__, "--one", "--device", args.device, "--shape", args.shape, "--batches",
               str(b), "--seq-len", str(args.seq_len)] + (["--grad-ckpt"] if args.grad_ckpt else [])
        measured = json.loads(subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
                              .stdout.strip().splitlines()[-1])
        est = estimate(arch, "lora", "cpu" if args.device == "cpu" else "h100", batch=b, seq_len=args.seq_len,
                       grad_ckpt=args.grad_ckpt, act_bytes=4 if args.device == "cpu" else 2,
                       runtime_gib=0.0, memory_gib=None if args.device == "cpu" else 80)
        total = est.total_gib
        rows.append({"batch": b, "seq_len": args.seq_len, "grad_ckpt": args.grad_ckpt, "estimated_gib": total,
                     "parts_gib": est.parts, "measured_gib": measured, "error": (total - measured) / measured})
        print(f"batch {b:>3} x {args.seq_len}: estimated {total:.3f} GiB, measured {measured:.3f} GiB "
              f"({rows[-1]['error']:+.1%})", flush=True)
    if args.out:
        import torch

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({
            "what": "medtune plan's estimate vs the measured peak of one LoRA r=16 all-linear training step",
            "command": " ".join(["python", "benchmarks/plan_vs_measured.py", *sys.argv[1:]]),
            "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(0),
            "shape": shape, "measurement": "CPU: peak RSS (VmHWM after clear_refs) minus RSS before the model; "
                                           "GPU: torch.cuda.max_memory_allocated",
            "torch": torch.__version__, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
