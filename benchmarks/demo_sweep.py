"""The demo recipe's learning rate and step count, chosen on the SELECTION split (cut from the training
side), never on the 500 reported questions.

    python benchmarks/demo_sweep.py [--lrs 5e-5 1e-4 2e-4] [--steps 30] [--every 10] \
        [--out benchmarks/results/demo-sweep-selection.json] [key=value ...]

For each learning rate, trains the demo recipe (with any overrides) through `build_trainer`, scoring the
selection questions every `--every` steps (accuracy and the share of the most predicted letter) and
before training. The reported eval set is not loaded into any score here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one(lr: float, steps: int, every: int, overrides: list[str]) -> dict:
    from medtune.runfolder import RunFolder
    from medtune.train.recipe import load_recipe
    from medtune.train.run import make_trainer, set_up
    from medtune.train.methods import get_method

    out = f"/tmp/medtune-sweep-{lr:g}"
    recipe = load_recipe("demo-cpu", [f"train.lr={lr}", f"train.max_steps={steps}", f"train.eval_steps={every}",
                                      f"train.save_steps={steps}", "baseline_eval=false", f"output_dir={out}",
                                      "train.save_total_limit=1", *overrides])
    s = set_up(recipe, get_method(recipe.method))
    trainer, _ = make_trainer(recipe, s, RunFolder(out))
    t0 = time.perf_counter()
    letters = []
    evaluate = trainer.evaluate

    def evaluate_and_keep_letters(*a, **kw):
        out = evaluate(*a, **kw)
        letters.append({k: round(v, 3) for k, v in sorted(trainer.mt_last_letters.items())})
        return out

    trainer.evaluate = evaluate_and_keep_letters
    start = trainer.evaluate()  # the base model on the selection split
    trainer.train()
    hist = [{"step": 0, "accuracy": start["eval_accuracy"], "top_letter_share": start["eval_top_letter_share"]}]
    hist += [{"step": h["step"], "accuracy": h["eval_accuracy"], "top_letter_share": h["eval_top_letter_share"]}
             for h in trainer.state.log_history if "eval_accuracy" in h and h.get("step")]
    for h, dist in zip(hist, letters):
        h["letters"] = dist
    loss = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    sel = s.questions.selection
    gold = {k: round(sum(it.answer_letter == k for it in sel) / len(sel), 3) for k in "ABCD"}
    return {"lr": lr, "overrides": overrides, "selection_questions": len(sel), "gold_letters": gold,
            "history": hist, "loss": loss,
            "seconds": time.perf_counter() - t0, "load_avg": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lrs", type=float, nargs="+", default=[5e-5, 1e-4, 2e-4])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "demo-sweep-selection.json"))
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    runs: list[dict] = []
    for lr in args.lrs:  # the file is rewritten after each run, so a partial sweep is kept
        r = one(lr, args.steps, args.every, args.overrides)
        runs.append(r)
        print(json.dumps({"lr": lr, "history": r["history"]}), flush=True)
        ok = [(h["accuracy"], -h["step"], x["lr"], h["step"]) for x in runs for h in x["history"]
              if h["step"] and h["top_letter_share"] <= 0.5]
        best = max(ok) if ok else None
        doc = {"what": "demo recipe lr x steps on the selection split", "command": "python " + " ".join(sys.argv),
               "runs": runs, "done": [x["lr"] for x in runs], "planned": args.lrs,
               "chosen": {"lr": best[2], "steps": best[3], "selection_accuracy": best[0]} if best else None,
               "rule": "highest selection accuracy among checkpoints with no letter above 50% (ties: fewer steps)"}
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc["chosen"]))


if __name__ == "__main__":
    main()
