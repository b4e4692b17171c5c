"""Tokenizing a MedMCQA-train-sized file for training: cold and from the cache, before and after.

    python benchmarks/train_tokenize.py [--rows 182822] [--before 2017632] [--no-before]
                                        [--out benchmarks/results/train-tokenize-182k.json]

Builds a 182,822-row question list from the shipped MedMCQA dev questions (ids made unique, a row
number appended to each question so no two rows tokenize alike) and times
`medtune.train.trainset.cached_examples` for the demo recipe's tokenizer, template, length and target:
first with an empty cache (cold), then again (read from medtune's content-keyed cache). Each side runs
in a fresh process: this tree, and the code at `--before` (extracted with `git archive`), in the same
run; a sha256 over every example's input ids and labels shows both sides tokenize alike.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(tree: str, rows: int) -> dict:
    """Time cold and cached tokenization with the medtune found in `tree` (run in its own process)."""
    sys.path.insert(0, tree)
    import dataclasses

    tmp = tempfile.mkdtemp(prefix="medtune-tok-")
    from medtune.data import cache as C
    from medtune.data import load_benchmark
    from medtune.models import load_tokenizer, resolve_model
    from medtune.train.recipe import load_recipe
    from medtune.train.trainset import cached_examples

    C.cache_root = lambda: Path(tmp) / "data-cache"  # an empty cache of its own
    recipe = load_recipe("demo-cpu")
    base, _ = load_benchmark("medmcqa-dev")
    items = [dataclasses.replace(base[i % len(base)], id=f"gen{i}", question=f"{base[i % len(base)].question} ({i})")
             for i in range(rows)]
    tok = load_tokenizer(resolve_model(recipe.model.name))
    t0 = time.perf_counter()
    cold = cached_examples(items, tok, recipe, "chat", False, quiet=True)
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = cached_examples(items, tok, recipe, "chat", False, quiet=True)
    cached_s = time.perf_counter() - t0
    digest = hashlib.sha256()
    for a, b in zip(cold, warm):
        assert a == b, "the cached examples differ from the tokenized ones"
        digest.update(json.dumps([a["input_ids"], a["labels"]]).encode())
    import resource

    return {"cold_s": round(cold_s, 2), "cached_s": round(cached_s, 2), "examples": len(cold),
            "sha256": digest.hexdigest(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "tokenizer": recipe.model.name, "max_length": recipe.data.max_length}


def side(tree: Path, rows: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", str(tree), "--rows", str(rows)],
                         check=True, capture_output=True, text=True, cwd=tree)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=182_822)
    ap.add_argument("--before", default="2017632", help="git revision of the code to compare against")
    ap.add_argument("--no-before", action="store_true", help="time only this tree")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train-tokenize-182k.json"))
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.rows)))
        return
    result = {"what": "tokenize training examples (demo recipe: SmolLM2 tokenizer, chat template)",
              "command": "python benchmarks/train_tokenize.py", "rows": args.rows, "cores": os.cpu_count(),
              "load_before_run": [round(x, 2) for x in os.getloadavg()],
              "after_commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                             capture_output=True, text=True).stdout.strip()}
    if not args.no_before:
        with tempfile.TemporaryDirectory(prefix="medtune-before-") as before:
            subprocess.run(f"git -C {ROOT} archive {args.before} | tar -x -C {before}", shell=True, check=True)
            result["before"] = {"commit": args.before, **side(Path(before), args.rows)}
    result["after"] = side(ROOT, args.rows)
    if "before" in result:
        result["same_examples"] = result["before"]["sha256"] == result["after"]["sha256"]
        result["speedup_cold"] = round(result["before"]["cold_s"] / result["after"]["cold_s"], 2)
    result["load_after_run"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
