"""The generative scorer end to end on a few real questions: accuracy, unparseable rate, tokens, seconds.

Runs `--scorer generate` through the SCORERS registry (what `medtune eval --scorer generate` calls) on
the first N questions of a benchmark file, greedy, and records the extraction rule per question and
a few raw generations, so a reader can check what the extractor read.

usage: python benchmarks/generate_smoke.py OUT.json [--data FILE] [--limit 20] [--model smollm2-135m-instruct]
       [--max-new-tokens 256] [--batch-size 8] [--thinking] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "medmcqa" / "dev.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--thinking", action="store_true")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch

    from medtune.data.sources import load_benchmark
    from medtune.eval.scorers import ScorerOptions, get_scorer
    from medtune.manifest import cpu_model, git_commit, package_versions
    from medtune.eval.runtime import RuntimeSpec, load_runtime

    rt = load_runtime(RuntimeSpec(model=args.model, device=args.device, scorer="generate"), quiet=True)
    backend, ref, tok, model = rt.backend, rt.ref, rt.tokenizer, rt.model
    items = load_benchmark([args.data])[0][: args.limit]
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = get_scorer("generate").run(model, tok, items, None, batch_size=args.batch_size,
                                         device=backend.device,
                                         options=ScorerOptions(max_new_tokens=args.max_new_tokens,
                                                               thinking=args.thinking))
    seconds = time.perf_counter() - t0
    predicted = out.predicted["generate"]
    correct = sum(p == it.answer_index for p, it in zip(predicted, items))
    answered = [(p, it) for p, it in zip(predicted, items) if p is not None]
    result = {
        "what": "generative scorer (greedy, HF generate with the KV cache), answers read by medtune.eval.extract",
        "command": "python benchmarks/generate_smoke.py " + " ".join(sys.argv[1:]),
        "commit": git_commit(), "versions": package_versions(),
        "device": {"backend": backend.to_dict(), "cpu": cpu_model(), "cores": os.cpu_count(),
                   "torch_threads": torch.get_num_threads(), "load_average_1_5_15": os.getloadavg()},
        "machine_note": "shared 2-core machine with other jobs running (see load_average): seconds are not a speed figure",
        "model": ref.name, "data": args.data, "questions": len(items), "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens, "thinking": args.thinking,
        "accuracy": correct / len(items), "correct": correct,
        "accuracy_of_parseable": (sum(p == it.answer_index for p, it in answered) / len(answered)
                                  if answered else None),
        "chance": sum(1 / len(it.options) for it in items) / len(items),
        **out.extra,
        "seconds": seconds, "questions_per_s": len(items) / seconds,
        "new_tokens_per_s": out.extra["mean_new_tokens"] * len(items) / seconds,
        "per_question": [{"id": it.id, "gold": "ABCDEFGHIJ"[it.answer_index],
                          "predicted": None if p is None else "ABCDEFGHIJ"[p], "extraction": row["extraction"],
                          "generation": row["generation"][:600]}
                         for it, p, row in zip(items, predicted, out.rows)],
    }
    print(f"{len(items)} questions · accuracy {result['accuracy']:.3f} ({correct}) · unparseable "
          f"{out.extra['unparseable']} ({out.extra['unparseable_rate']:.0%}) · mean {out.extra['mean_new_tokens']:.1f} "
          f"new tokens · {seconds:.1f} s · rules {out.extra['extraction']}")
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
