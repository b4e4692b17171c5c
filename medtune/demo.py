"""`medtune demo`: the main job on the embedded model and the MedMCQA data shipped with medtune.

It runs the recipe configs/demo-cpu.yaml: a stable hash split of the shipped MedMCQA dev file
(500 questions held out), the embedded SmolLM2-135M-Instruct scored before training, a LoRA
fine-tune on the rest, the same questions scored after, and a paired comparison. The verdict only
counts a gain that is significant and also beats always answering the most frequent letter.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def verdict(summary: dict, alpha: float = 0.05) -> str:
    """One honest sentence on whether fine-tuning helped on the held-out questions."""
    comp = summary.get("compare")
    if not comp:
        return "No baseline was scored, so there is nothing to compare."
    row = comp["rows"][0]
    mf = comp["baselines"]["most_frequent_letter"]
    new, base, p = row["new"]["accuracy"], row["base"]["accuracy"], row["mcnemar"]["p_value"]
    beats_prior = row["new"]["ci95"][0] > mf["accuracy"]
    if new > base and p < alpha and beats_prior:
        return (f"A real gain: {base:.1%} -> {new:.1%} (McNemar p = {p:.3g}), and the lower end of the new "
                f"95% interval is above always answering {mf['letter']!r} ({mf['accuracy']:.1%}).")
    if new > base and p < alpha:
        return (f"Accuracy rose {base:.1%} -> {new:.1%} (McNemar p = {p:.3g}), but not clearly above always "
                f"answering {mf['letter']!r} ({mf['accuracy']:.1%}): that could be the answer prior, not knowledge.")
    if new < base and p < alpha:
        return f"Accuracy fell {base:.1%} -> {new:.1%} (McNemar p = {p:.3g})."
    return (f"No significant change: {base:.1%} -> {new:.1%} (McNemar p = {p:.3g}); always answering "
            f"{mf['letter']!r} scores {mf['accuracy']:.1%} on these questions.")


def collapse_note(summary: dict, limit: float = 0.5) -> str | None:
    """A sentence when the trained model gives one letter to more than `limit` of the questions."""
    after = (summary.get("letters") or {}).get("after") or {}
    if not after:
        return None
    letter, share = max(after.items(), key=lambda kv: kv[1])
    if share <= limit:
        return None
    gold = summary["letters"]["gold"].get(letter, 0.0)
    return (f"The trained model answers {letter!r} to {share:.0%} of the questions ({gold:.0%} of the gold "
            f"answers are {letter!r}): it learned the answer format more than the questions.")


def bias_line(summary: dict) -> str | None:
    """The letters answered before and after and the selection bias (RStd: spread of per-letter recall)."""
    row = ((summary.get("compare") or {}).get("rows") or [None])[0]
    letters = summary.get("letters") or {}
    if not row or not row["base"].get("bias") or not row["new"].get("bias"):
        return None
    dist = {k: " ".join(f"{a} {v:.0%}" for a, v in (letters.get(k) or {}).items()) for k in ("before", "after")}
    return (f"Letters answered: before {dist['before']} · after {dist['after']}; selection bias (RStd) "
            f"{row['base']['bias']['rstd']:.1%} -> {row['new']['bias']['rstd']:.1%}.")


def run_demo(args: argparse.Namespace) -> int:
    """Train and evaluate per configs/demo-cpu.yaml (with any key=value overrides), then sum up."""
    from medtune.io import MARKER, mark_folder, remove_made_folder
    from medtune.train.recipe import load_recipe
    from medtune.train.run import run_train

    t0 = time.perf_counter()
    recipe = load_recipe("demo-cpu", list(args.overrides or []))
    if (Path(recipe.output_dir) / MARKER).is_file():  # a folder an earlier demo made
        print(f"medtune demo: replacing the earlier demo run in {recipe.output_dir}", flush=True)
    remove_made_folder(recipe.output_dir, field="output_dir")  # any other non-empty folder: refused
    mark_folder(recipe.output_dir, made_by="medtune demo")
    print("medtune demo: the embedded SmolLM2-135M-Instruct on the 4,183 MedMCQA dev questions shipped with "
          "medtune (MIT licence). No MedMCQA train split is shipped, so a stable hash split holds "
          f"{recipe.data.eval_size} questions out for evaluation and trains on the rest.", flush=True)
    summary = run_train(recipe)
    print()
    print(verdict(summary))
    line = bias_line(summary)
    if line:
        print(line)
    note = collapse_note(summary)
    if note:
        print(note)
    print("A 135M-parameter model trained for minutes on a CPU is a pipeline check, not a clinical result.")
    print(f"run folder: {recipe.output_dir} (adapter/, baseline/ and final/ metrics, compare.json, curves.png) · "
          f"total {time.perf_counter() - t0:.0f} s")
    return 0
