"""Tokenizing a MedMCQA-train-sized file for training: cold (batched tokenizer calls) and cached.

    python benchmarks/train_tokenize.py [--rows 182822] [--out benchmarks/results/train-tokenize-182k.json]

Builds a 182,822-row file from the shipped MedMCQA dev questions (ids made unique, a row number appended
to each question so no two rows tokenize alike), then times `medtune.train.trainset.cached_examples` for
the demo recipe's tokenizer, template, length and target: first with an empty cache (cold), then again
(read from medtune's content-keyed cache). Also times the previous one-question-at-a-time tokenization
on the first 5,000 rows to show the gain per question.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=182_822)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train-tokenize-182k.json"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="medtune-tok-")
    os.environ["MEDTUNE_CACHE_DATA"] = tmp
    from medtune.data import load_benchmark
    from medtune.data import cache as C
    from medtune.models import load_tokenizer, resolve_model
    from medtune.train.examples import build_example
    from medtune.train.recipe import load_recipe
    from medtune.train.trainset import cached_examples

    C.cache_root = lambda: Path(tmp) / "data-cache"  # an empty cache of its own, removed by the OS later
    recipe = load_recipe("demo-cpu")
    base, _ = load_benchmark("medmcqa-dev")
    items = [dataclasses.replace(base[i % len(base)], id=f"gen{i}", question=f"{base[i % len(base)].question} ({i})")
             for i in range(args.rows)]
    ref = resolve_model(recipe.model.name)
    tok = load_tokenizer(ref)
    t0 = time.perf_counter()
    cold = cached_examples(items, tok, recipe, "chat", False, quiet=True)
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = cached_examples(items, tok, recipe, "chat", False, quiet=True)
    warm_s = time.perf_counter() - t0
    assert warm == cold
    n_old = 5000
    t0 = time.perf_counter()
    old = [build_example(it, tok, "chat", recipe.data.target, recipe.data.max_length, recipe.data.loss_on)
           for it in items[:n_old]]
    old_s = time.perf_counter() - t0
    assert old == cold[:n_old]  # batched tokenization gives the same ids
    result = {"what": "tokenize training examples", "command": "python benchmarks/train_tokenize.py",
              "rows": args.rows, "cold_s": cold_s, "cached_s": warm_s, "per_question_ms_batched": 1e3 * cold_s / args.rows,
              "per_question_ms_one_at_a_time": 1e3 * old_s / n_old, "one_at_a_time_rows": n_old,
              "tokenizer": ref.name, "template": "chat", "max_length": recipe.data.max_length,
              "cores": os.cpu_count(), "load": os.getloadavg()}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
