"""medtune's letter scorer against lm-evaluation-harness's Hugging Face backend, same run, same model
object, same questions and the same prompt text.

A local lm-eval task is written to a temporary folder: its documents carry the prompt medtune renders
(`plain` template), `doc_to_choice` the letters and the default " " target delimiter, which is exactly
the continuation medtune's letter scorer scores. lm-eval wraps the already-loaded model (HFLM), so
both read identical weights. Both are timed on the scoring alone (model loading excluded); lm-eval's
per-choice log-likelihoods (--log_samples) give its predictions, compared one by one with medtune's.

usage: python benchmarks/vs_lm_eval.py OUT.json [--model M | --shape S --tokenizer T] [--limit N] [--batch-size B]
       (pip install lm-eval first; it is a benchmark dependency, not one of medtune's)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize_eval import cpu_model  # noqa: E402

TASK = """task: medtune_medmcqa
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{prompt}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
metric_list:
  - metric: acc
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", default="medmcqa-dev")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--shape", help="a shipped architecture with random weights (e.g. qwen3-1.7b): speed only")
    ap.add_argument("--tokenizer", help="tokenizer folder for --shape")
    args = ap.parse_args()

    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from medtune.backend import select_backend
    from medtune.data.prompts import render
    from medtune.data.sources import load_benchmark
    from medtune.eval.run import score_items
    from medtune.manifest import git_commit, package_versions
    from medtune.models import load_causal_lm, load_tokenizer, resolve_model

    backend = select_backend(args.device)
    bs = args.batch_size or (8 if backend.kind == "cpu" else 64)
    ref = resolve_model(args.tokenizer if args.shape else args.model)
    tok = load_tokenizer(ref)
    if args.shape:
        from medtune.bench.common import shape_model as _shape_model

        model = _shape_model(args.shape, backend.torch_dtype()).to(backend.device).eval()
        ref.name = f"{args.shape} shape, random weights"
    else:
        model = load_causal_lm(ref, backend)
    items, _ = load_benchmark([args.data])
    items = items[: args.limit] if args.limit else items

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "medmcqa.jsonl"
        with data.open("w") as f:
            for it in items:
                p = render(it, "plain", tok)
                f.write(json.dumps({"id": it.id, "prompt": p.prompt, "choices": list(p.choices),
                                    "gold": it.answer_index}) + "\n")
        (Path(tmp) / "medtune_medmcqa.yaml").write_text(TASK.format(data=data))
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=bs, device=backend.device)
        t0 = time.perf_counter()
        res = lm_eval.simple_evaluate(model=lm, tasks=["medtune_medmcqa"], task_manager=TaskManager(include_path=tmp),
                                      log_samples=True, bootstrap_iters=0, batch_size=bs)
        lm_s = time.perf_counter() - t0
    samples = sorted(res["samples"]["medtune_medmcqa"], key=lambda s: s["doc_id"])
    lm_ll = [[float(r[0][0]) for r in s["resps"]] for s in samples]
    lm_pred = [max(range(len(x)), key=x.__getitem__) for x in lm_ll]

    t0 = time.perf_counter()
    with torch.inference_mode():
        ours, _ = score_items(model, tok, items, "letter", "plain", batch_size=bs, device=backend.device)
    ours_s = time.perf_counter() - t0
    our_pred = [max(range(len(x)), key=x.__getitem__) for x in ours["letter"]]
    diff = max(abs(a - b) for x, y in zip(ours["letter"], lm_ll) for a, b in zip(x, y))
    same = sum(a == b for a, b in zip(our_pred, lm_pred))
    out = {
        "what": "medtune letter scorer vs lm-evaluation-harness HF backend: same process, model, questions, prompt",
        "command": "python benchmarks/vs_lm_eval.py " + " ".join(sys.argv[1:]),
        "commit": git_commit(), "versions": {**package_versions(), "lm_eval": lm_eval.__version__},
        "device": {"backend": backend.to_dict(), "cpu": cpu_model(), "cores": os.cpu_count()},
        "model": ref.name, "questions": len(items), "batch_size": bs, "template": "plain",
        "lm_eval": {"seconds": lm_s, "questions_per_s": len(items) / lm_s,
                    "accuracy": res["results"]["medtune_medmcqa"].get("acc,none")},
        "medtune": {"seconds": ours_s, "questions_per_s": len(items) / ours_s,
                    "accuracy": sum(p == it.answer_index for p, it in zip(our_pred, items)) / len(items)},
        "speedup": lm_s / ours_s, "identical_predictions": same, "max_abs_loglik_difference": diff,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("questions", "lm_eval", "medtune", "speedup", "identical_predictions",
                                          "max_abs_loglik_difference")}, indent=2))


if __name__ == "__main__":
    main()
