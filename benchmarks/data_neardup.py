"""Recall and precision of near-duplicate detection on planted twins over a full-size train file.

A synthetic Hub-layout MedMCQA train file (`medtune.data.synth`, 182,822 rows by default) gets
planted twins of rows whose question has 15+ words — exact copies, one word replaced, one word
inserted, one word deleted, options reordered, whitespace and case changed — `--per-kind` of each.

- `--against` (`data stats EVAL --against TRAIN`): EVAL = the twins + as many fresh questions;
  recall per kind = twins flagged / twins; precision = flagged twins / all flagged.
- the split's cluster rule (`data split`): the twins are added to the train file itself; recall =
  planted pairs that end in one cluster; precision = planted pairs / all pairs the rule linked.

Each is measured for the rule in force (word-trigram Jaccard >= 0.7) and the earlier threshold 0.8,
and, with --before REV, for the earlier code itself (MinHash LSH at 0.8, run from `git archive REV`).
Every pair flagged that was not planted is written out for checking by hand, and so are the pairs
the new rule adds on the real MedMCQA dev file (../shared/data/medmcqa/dev.jsonl) when present.

usage: python benchmarks/data_neardup.py [--rows 182822] [--per-kind 1000] [--before a32337a]
                                         [--out benchmarks/results/data-neardup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medtune.data import LoadOptions, load_benchmark  # noqa: E402
from medtune.data.duplicates import clusters, contaminated, near_duplicate_pairs, normalize  # noqa: E402
from medtune.data.neardup import NEAR_THRESHOLD, group_pairs, item_tokens  # noqa: E402
from medtune.data.synth import TWIN_KINDS, generate_rows, plant_twins, write_jsonl  # noqa: E402

OLD_CODE = """
import json, sys
from medtune.data import load_benchmark
from medtune.data.split import normalize, near_duplicate_pairs
import medtune
assert medtune.__file__.startswith(sys.argv[3]), medtune.__file__   # the old tree, not this one
train, _ = load_benchmark(sys.argv[1]); evals, _ = load_benchmark(sys.argv[2])
texts = [normalize(i) for i in train] + [normalize(i) for i in evals]
n = len(train); hit = set()
for i, j, s in near_duplicate_pairs(texts, 0.8):
    if i < n <= j: hit.add(evals[j - n].id)
print(json.dumps(sorted(hit)))
"""


def against(train, evals, twins, threshold: float) -> dict:
    """Recall per kind and precision of the contamination check."""
    t0 = time.perf_counter()
    exact, near, twin = contaminated(train, evals, threshold)
    secs = time.perf_counter() - t0
    flagged = exact | near
    kind_of = {t["id"]: k for t, _, k in twins}
    src_of = {t["id"]: s for t, s, _ in twins}
    per, tot = Counter(), Counter()
    false = []
    for j, it in enumerate(evals):
        k = kind_of.get(it.id)
        if k is not None:
            tot[k] += 1
            per[k] += bool(flagged[j])
        elif flagged[j]:
            false.append({"eval": it.id, "train": train[twin[j][0]].id, "similarity": round(twin[j][1], 3),
                          "eval_text": normalize(it), "train_text": normalize(train[twin[j][0]])})
    wrong_twin = sum(1 for j, it in enumerate(evals) if it.id in src_of and flagged[j]
                     and twin[j][1] < 1.0 and train[twin[j][0]].id != src_of[it.id])
    n_flag = int(flagged.sum())
    return {"threshold": threshold, "seconds": round(secs, 2),
            "recall_by_kind": {k: round(per[k] / tot[k], 4) for k in TWIN_KINDS},
            "recall_edits": round(sum(per[k] for k in ("replace", "insert", "delete"))
                                  / sum(tot[k] for k in ("replace", "insert", "delete")), 4),
            "recall_all": round(sum(per.values()) / sum(tot.values()), 4),
            "flagged": n_flag, "precision": round((n_flag - len(false)) / n_flag, 4) if n_flag else None,
            "false_positives": false[:20], "closest_twin_not_the_planted_source": wrong_twin}


def split_rule(items, twins, threshold: float) -> dict:
    """Recall per kind (planted pairs in one cluster) and precision (planted / all linked pairs)."""
    t0 = time.perf_counter()
    labels, _, info = clusters(items, threshold)
    secs = time.perf_counter() - t0
    at = {it.id: i for i, it in enumerate(items)}
    per, tot = Counter(), Counter()
    for t, src, k in twins:
        tot[k] += 1
        per[k] += bool(labels[at[t["id"]]] == labels[at[src]])
    groups, pairs, sims = group_pairs(item_tokens(items), threshold)
    planted = {frozenset((at[t["id"]], at[src])) for t, src, _ in twins}
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups.rep.tolist()):
        members.setdefault(g, []).append(i)
    linked = [(m[0], b) for m in members.values() for b in m[1:]]
    linked += [(int(groups.first[g]), int(groups.first[h])) for g, h in pairs.tolist()]
    false = [(a, b) for a, b in linked if frozenset((a, b)) not in planted]
    return {"threshold": threshold, "seconds": round(secs, 2),
            "recall_by_kind": {k: round(per[k] / tot[k], 4) for k in TWIN_KINDS},
            "recall_all": round(sum(per.values()) / sum(tot.values()), 4),
            "linked_pairs": len(linked), "precision": round(1 - len(false) / len(linked), 4) if linked else None,
            "multi_question_clusters": info["multi_question_clusters"],
            "false_positives": [{"a": items[a].id, "b": items[b].id, "a_text": normalize(items[a]),
                                 "b_text": normalize(items[b])} for a, b in false[:20]]}


def real_dev_additions() -> list[dict] | None:
    """Pairs within the real MedMCQA dev file that 0.7 finds and 0.8 does not (to read by hand)."""
    dev = ROOT.parent / "shared" / "data" / "medmcqa" / "dev.jsonl"
    if not dev.is_file():
        return None
    items, _ = load_benchmark(str(dev), LoadOptions(cache=False))
    texts = [normalize(it) for it in items]
    new = [(i, j, s) for i, j, s in near_duplicate_pairs(texts, 0.7) if s < 0.8]
    return [{"a": items[i].id, "b": items[j].id, "similarity": round(s, 3), "a_text": texts[i],
             "b_text": texts[j], "same_answer_text": items[i].answer_text == items[j].answer_text}
            for i, j, s in new]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=182_822)
    ap.add_argument("--per-kind", type=int, default=1000)
    ap.add_argument("--before", default=None, help="also measure the code of this git revision (slow)")
    ap.add_argument("--before-only", action="store_true", help="with --before: only the earlier code's figures")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "data-neardup.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medtune-neardup-"))
    rows = list(generate_rows(args.rows, seed=0))
    twins = plant_twins(rows, args.per_kind * len(TWIN_KINDS), seed=1)
    fresh = list(generate_rows(len(twins), seed=7))
    write_jsonl(work / "train.jsonl", rows)
    write_jsonl(work / "eval.jsonl", [t for t, _, _ in twins] + fresh)
    write_jsonl(work / "train_twins.jsonl", rows + [t for t, _, _ in twins])
    del rows, fresh
    opts = LoadOptions(cache=False)
    out = {"rows": args.rows, "twins_per_kind": args.per_kind, "min_question_words": 15,
           "rule": f"word-trigram Jaccard of normalised question + sorted options >= {NEAR_THRESHOLD}"}
    if not args.before_only:
        measure_new(work, twins, opts, out)
    if args.before:
        out["against_before"] = measure_before(work, twins, args.before, args.per_kind)
    out["real_dev_pairs_added_by_0.7"] = real_dev_additions()
    out["load_avg"] = list(os.getloadavg())
    Path(args.out).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")


def measure_new(work: Path, twins, opts, out: dict) -> None:
    """--against and split-cluster figures of this tree, at the rule's threshold and at 0.8."""
    train, _ = load_benchmark(str(work / "train.jsonl"), opts)
    evals, _ = load_benchmark(str(work / "eval.jsonl"), opts)
    out["against"] = [against(train, evals, twins, t) for t in (NEAR_THRESHOLD, 0.8)]
    for r in out["against"]:
        print(f"--against  t={r['threshold']}: recall {r['recall_by_kind']} precision {r['precision']} "
              f"({r['seconds']} s)", flush=True)
    del train, evals
    both, _ = load_benchmark(str(work / "train_twins.jsonl"), opts)
    out["split"] = [split_rule(both, twins, t) for t in (NEAR_THRESHOLD, 0.8)]
    for r in out["split"]:
        print(f"split      t={r['threshold']}: recall {r['recall_by_kind']} precision {r['precision']} "
              f"({r['seconds']} s)", flush=True)
    del both


def measure_before(work: Path, twins, rev: str, per_kind: int) -> dict:
    """The earlier code's --against recall (its own loader and MinHash search, at its 0.8)."""
    tree = work / "before"
    tree.mkdir()
    subprocess.run(f"git -C {ROOT} archive {rev} | tar -x -C {tree}", shell=True, check=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", OLD_CODE, str(work / "train.jsonl"), str(work / "eval.jsonl"),
                           str(tree)], env={**os.environ, "PYTHONPATH": str(tree)}, cwd=str(tree),
                          capture_output=True, text=True, check=True)
    hit = set(json.loads(proc.stdout))
    kinds = Counter(k for t, _, k in twins if t["id"] in hit)
    res = {"revision": rev, "threshold": 0.8, "seconds": round(time.perf_counter() - t0, 1),
           "recall_by_kind": {k: round(kinds[k] / per_kind, 4) for k in TWIN_KINDS},
           "flagged": len(hit), "flagged_not_planted": len(hit - {t["id"] for t, _, _ in twins})}
    print(f"--against  before ({rev}): {res}", flush=True)
    return res


if __name__ == "__main__":
    main()
