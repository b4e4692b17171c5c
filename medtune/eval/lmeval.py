"""lm-evaluation-harness's output shape: a suite's results as lm-eval writes `results_*.json`, so tools
that read leaderboard results (the `results` block: "acc,none", "acc_stderr,none" per task) read ours."""

from __future__ import annotations

import math
import time


def acc_stderr(accuracy: float, n: int) -> float:
    """lm-eval's standard error of a mean of 0/1 outcomes: sample standard deviation (n-1) over sqrt(n)."""
    if n < 2:
        return 0.0
    return math.sqrt(accuracy * (1 - accuracy) / (n - 1))


def results_json(summary: dict) -> dict:
    """lm-eval's results JSON for a suite summary (medtune.eval.suite.run_suite). acc_norm, where the
    task reports it, equals acc: lm-eval divides each choice's log-likelihood by the choice's length in
    characters, and the letter choices A-D all have length 1."""
    results, n_samples, n_shot, better, versions = {}, {}, {}, {}, {}
    for row in summary["tasks"]:
        task, n, acc = row["task"], row["n"], row["accuracy"]
        entry = {"alias": task}
        for metric in row["metrics"]:
            entry[f"{metric},none"] = acc
            entry[f"{metric}_stderr,none"] = acc_stderr(acc, n)
        results[task] = entry
        n_samples[task] = {"original": row.get("n_total", n), "effective": n}
        n_shot[task] = 0
        better[task] = {m: True for m in row["metrics"]}
        versions[task] = 1.0
    man = summary.get("manifest") or {}
    return {
        "results": results,
        "group_subtasks": {summary["suite"]: [r["task"] for r in summary["tasks"]]},
        "versions": versions, "n-shot": n_shot, "higher_is_better": better, "n-samples": n_samples,
        "config": {"model": "medtune", "model_args": f"pretrained={summary['model']}"
                   + (f",peft={summary['adapter']}" if summary.get("adapter") else ""),
                   "batch_size": None, "limit": summary.get("limit"), "bootstrap_iters": 0},
        "git_hash": man.get("git_commit"), "date": time.time(),
        "model_name": summary["model"],
        "medtune": {"suite": summary["suite"], "average": summary["average"],
                    "average_rule": summary["average_rule"], "template": summary["template"],
                    "scorer": summary["scorer"],
                    "data": {r["task"]: {"data": r["data"], "kind": r["kind"], "split": r["split"], "note": r["note"]}
                             for r in summary["tasks"]},
                    **({"permute": summary["permute"], "permutation": {r["task"]: r["permutation"]
                                                                       for r in summary["tasks"]}}
                       if summary.get("permute") else {})},
    }
