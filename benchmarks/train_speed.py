"""Training speed of the demo recipe on CPU, A/B in one process: before (LM head over every position),
after (head on labelled positions only, the new demo recipe), and the prototype recipe run as a plain
transformers Trainer script (as the seeds' code did it), on the embedded SmolLM2 and the shipped MedMCQA.

    python benchmarks/train_speed.py [--steps 4] [--warmup 1] [--rounds 2] \
        [--out benchmarks/results/train-speed-demo-cpu.json]

Each configuration runs `rounds` times, interleaved (before, after, prototype, after, before, ...), so a
change in the machine's load hits all of them; the figure is non-padding tokens per second over the
timed steps (median step time is recorded too). The machine's load average is recorded beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PROTOTYPE_OVERRIDES = ["model.name=smollm2-135m-instruct", "data.train=[medmcqa-dev]", "data.max_rows=null",
                       "train.precision=fp32", "data.eval_size=500"]


def prototype_plain_trainer(steps: int, warmup: int) -> dict:
    """The prototype's recipe as a plain Trainer script: LoRA r=8 on q/v, batch 4 x 4, 256 tokens with
    dynamic padding, gradient checkpointing, whole-sequence loss on its ### Question/Answer/Explanation text."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from medtune.data.prompts import render
    from medtune.models import load_tokenizer, resolve_model
    from medtune.train.recipe import load_recipe
    from medtune.train.trainer import StepTimer
    from medtune.train.trainset import load_questions

    recipe = load_recipe("hackathon-baseline", PROTOTYPE_OVERRIDES)
    ref = resolve_model(recipe.model.name)
    tok = load_tokenizer(ref)
    items = load_questions(recipe).train
    texts = []
    for it in items[: (steps + warmup) * 16 * 2]:
        p = render(it, "hackathon", tok, target="letter_text_explanation")
        texts.append(p.prompt + " " + p.target + tok.eos_token)
    enc = [tok(t, truncation=True, max_length=256)["input_ids"] for t in texts]
    data = [{"input_ids": ids, "labels": ids} for ids in enc]
    counted: list[int] = []

    def collate(feats: list[dict]) -> dict:
        n = max(len(f["input_ids"]) for f in feats)
        ids = torch.full((len(feats), n), tok.pad_token_id)
        mask = torch.zeros((len(feats), n), dtype=torch.long)
        for i, f in enumerate(feats):
            ids[i, :len(f["input_ids"])] = torch.tensor(f["input_ids"])
            mask[i, :len(f["input_ids"])] = 1
        counted.append(int(mask.sum()))
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}

    model = AutoModelForCausalLM.from_pretrained(ref.path, dtype=torch.float32)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                             target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    timer = StepTimer("cpu")
    args = TrainingArguments(output_dir="/tmp/medtune-proto", per_device_train_batch_size=4,
                             gradient_accumulation_steps=4, learning_rate=2e-4, lr_scheduler_type="cosine",
                             warmup_steps=0.05, max_steps=steps + warmup, save_strategy="no", report_to="none",
                             logging_steps=10 ** 9, use_cpu=True, remove_unused_columns=False, seed=0,
                             disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=data, data_collator=collate, callbacks=[timer]).train()
    times = timer.times[warmup:]
    tokens = sum(counted[warmup * 4:(warmup + len(times)) * 4])
    return {"tokens_per_s": tokens / sum(times), "step_s_median": statistics.median(times), "steps_timed": len(times),
            "samples_per_s": 16 * len(times) / sum(times)}


def demo(steps: int, warmup: int, head_on_labels: bool, overrides: list[str]) -> dict:
    from medtune.bench.train import bench_train
    from medtune.train.recipe import load_recipe

    r = bench_train(load_recipe("demo-cpu", overrides), steps=steps, warmup=warmup, head_on_labels=head_on_labels)
    return {k: r[k] for k in ("tokens_per_s", "step_s_median", "steps_timed", "samples_per_s", "padding_fraction",
                              "mean_seq_len", "head_on_labels")} | {"peak_rss_gb": r["memory"]["host_peak_rss_gb"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--before", nargs="*", default=["lora.dropout=0.05"],
                    help="overrides giving the previous demo recipe")
    ap.add_argument("--also", nargs="*", default=[], metavar="NAME:KEY=VALUE,...",
                    help="more configurations of the demo recipe, e.g. top15:lora.layers=top:15")
    ap.add_argument("--no-before", action="store_true", help="leave the previous demo recipe out")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train-speed-demo-cpu.json"))
    args = ap.parse_args()
    import torch

    extra = {spec.split(":", 1)[0]: spec.split(":", 1)[1].split(",") for spec in args.also}
    names = ([] if args.no_before else ["before"]) + ["after", *extra, "prototype"]
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            t0 = time.perf_counter()
            if name == "prototype":
                res = prototype_plain_trainer(args.steps, args.warmup)
            elif name == "before":
                res = demo(args.steps, args.warmup, False, args.before)
            else:
                res = demo(args.steps, args.warmup, True, extra.get(name, []))
                res["overrides"] = extra.get(name, [])
            res["load_avg"] = os.getloadavg()[0]
            runs[name].append(res)
            print(f"round {r + 1} {name}: {res['tokens_per_s']:.1f} tokens/s ({time.perf_counter() - t0:.0f} s, "
                  f"load {res['load_avg']:.1f})", flush=True)
    tok = {k: statistics.median(x["tokens_per_s"] for x in v) for k, v in runs.items()}
    out = {"what": "demo-cpu training tokens/s: before / after / prototype as a plain Trainer script",
           "command": "python " + " ".join(sys.argv), "threads": torch.get_num_threads(), "cores": os.cpu_count(),
           "tokens_per_s_median": tok, "after_vs_before": tok["after"] / tok["before"] if "before" in tok else None,
           "after_vs_prototype": tok["after"] / tok["prototype"],
           "vs_prototype": {k: round(v / tok["prototype"], 3) for k, v in tok.items() if k != "prototype"},
           "runs": runs,
           "note": "machine shared with other work; the ratios (same process, interleaved) are the figures"}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("tokens_per_s_median", "after_vs_before", "vs_prototype")}))


if __name__ == "__main__":
    main()
