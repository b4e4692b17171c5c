"""medtune's `--template lm-eval` letter scorer against lm-evaluation-harness running its OWN task
definitions (medmcqa, medqa_4options, pubmedqa, six MMLU medical subjects) on the same local data, same
process, same model object.

lm-eval's tasks are used as shipped: a local task file `include:`s lm-eval's own task YAML (its
doc_to_text functions, choices, description and target delimiter) and only swaps the Hub dataset for
the local copy, converted to the Hub's schema (MedMCQA `cop` 0-based, MedQA as sent1/ending0-3/label,
PubMedQA's official test questions, MMLU question/choices/answer). Per task the record holds: the
prompts identical to lm-eval's contexts, the predictions identical out of n, the largest |Δ loglik|,
and both times in the same run (lm-eval's whole evaluate call, and its model calls alone).

usage (lm-eval lives in its own venv, not medtune's):
  MEDTUNE_CACHE=... /work/venv-lmeval/bin/python benchmarks/vs_lm_eval.py \
      benchmarks/results/vs-lm-eval-nine-tasks-cpu.json --data-dir ../shared/data --limit 40
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SUBJECTS = ["anatomy", "clinical_knowledge", "college_biology", "college_medicine", "medical_genetics",
            "professional_medicine"]
TASKS = ["medmcqa", "medqa_4options", "pubmedqa"] + [f"mmlu_{s}" for s in SUBJECTS]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").split("\n") if line.strip()]


def hub_rows(task: str, data_dir: Path) -> tuple[list[dict], Path, str | None]:
    """The local copy of a task in the schema of the Hub dataset lm-eval reads; the medtune source and
    the official split medtune keeps."""
    if task == "medmcqa":
        src = data_dir / "medmcqa" / "dev.jsonl"
        rows = [dict(r, cop=r["cop"] - 1) for r in _jsonl(src)]
        return rows, src, None
    if task == "medqa_4options":
        src = data_dir / "medqa" / "dev.jsonl"
        rows = []
        for i, r in enumerate(_jsonl(src)):
            o = r["options"]
            rows.append({"id": str(i), "sent1": r["question"], "sent2": "", "ending0": o["A"], "ending1": o["B"],
                         "ending2": o["C"], "ending3": o["D"], "label": "ABCD".index(r["answer_idx"])})
        return rows, src, None
    if task == "pubmedqa":
        src = data_dir / "pubmedqa" / "pqa_labeled.jsonl"
        rows = [r for r in _jsonl(src) if r["official_split"] == "test"]
        return rows, src, "test"
    subject = task.removeprefix("mmlu_")
    src = data_dir / "mmlu_medical" / f"{subject}_test.csv"
    with src.open(newline="", encoding="utf-8") as f:
        rows = [{"question": c[0], "subject": subject, "choices": c[1:5], "answer": "ABCD".index(c[5])}
                for c in csv.reader(f)]
    return rows, src, None


def task_yaml(task: str, data: Path) -> str:
    """A local lm-eval task: lm-eval's own task file, with the dataset swapped for a local JSON file."""
    import lm_eval

    tasks = Path(lm_eval.__file__).parent / "tasks"
    own = {"medmcqa": tasks / "medmcqa" / "medmcqa.yaml", "medqa_4options": tasks / "medqa" / "medqa.yaml",
           "pubmedqa": tasks / "pubmedqa" / "pubmedqa.yaml"}.get(task) or tasks / "mmlu" / "default" / f"{task}.yaml"
    return (f"include: {own}\ntask: local_{task}\ndataset_path: json\ndataset_name: null\n"
            f"dataset_kwargs:\n  data_files:\n    test: {data}\ntraining_split: null\nvalidation_split: null\n"
            f"test_split: test\nfewshot_split: null\n")


def run_lm_eval(lm, tasks: list[str], data_dir: Path, tmp: Path, limit: int | None, bs: int) -> tuple[dict, float, float]:
    """lm-eval's samples per task, its whole evaluate time, and the time inside its model calls."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    for task in tasks:
        rows, _, _ = hub_rows(task, data_dir)
        data = tmp / f"{task}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tmp / f"local_{task}.yaml").write_text(task_yaml(task, data))
    inner = {"s": 0.0}
    original = lm.loglikelihood

    def timed(requests, *a, **kw):
        t = time.perf_counter()
        try:
            return original(requests, *a, **kw)
        finally:
            inner["s"] += time.perf_counter() - t

    lm.loglikelihood = timed
    t0 = time.perf_counter()
    res = lm_eval.simple_evaluate(model=lm, tasks=[f"local_{t}" for t in tasks],
                                  task_manager=TaskManager(include_path=str(tmp), include_defaults=False),
                                  log_samples=True, bootstrap_iters=0, batch_size=bs, limit=limit)
    whole = time.perf_counter() - t0
    return {t: sorted(res["samples"][f"local_{t}"], key=lambda s: s["doc_id"]) for t in tasks}, whole, inner["s"]


def write_prompts(path: Path, tasks: list[str], data_dir: Path, rows: int) -> None:
    """lm-eval's own contexts and continuations for the first `rows` documents of each task (no model),
    the strings tests/test_lm_eval_templates.py pins medtune's `--template lm-eval` against."""
    from lm_eval.tasks import TaskManager, get_task_dict

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            hub, src, split = hub_rows(task, data_dir)
            data = Path(tmp) / f"{task}.jsonl"
            data.write_text("".join(json.dumps(r) + "\n" for r in hub))
            (Path(tmp) / f"local_{task}.yaml").write_text(task_yaml(task, data))
            t = get_task_dict([f"local_{task}"], TaskManager(include_path=tmp, include_defaults=False))[f"local_{task}"]
            docs = list(t.test_docs())[:rows]
            out[task] = [{"source": str(src.relative_to(data_dir)), "split": split, "index": i,
                          "context": t.fewshot_context(d, 0),
                          "continuations": [inst.arguments[1] for inst in t.construct_requests(d, t.fewshot_context(d, 0))]}
                         for i, d in enumerate(docs)]
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


def run_medtune(model, tok, tasks: list[str], data_dir: Path, limit: int | None, bs: int, device: str):
    """medtune's letter scores with the lm-eval template per task, the rendered prompts, and the time."""
    import torch

    from medtune.data.prompts import render
    from medtune.data.sources import LoadOptions, load_benchmark
    from medtune.eval.run import score_items

    loaded = {}
    for task in tasks:
        _, src, split = hub_rows(task, data_dir)
        items, _ = load_benchmark([str(src)], LoadOptions(split=split))
        loaded[task] = items[:limit] if limit else items
    out, t0 = {}, time.perf_counter()
    with torch.inference_mode():
        for task, items in loaded.items():
            scores, _ = score_items(model, tok, items, "letter", "lm-eval", batch_size=bs, device=device)
            out[task] = scores["letter"]
    seconds = time.perf_counter() - t0
    prompts = {t: [render(it, "lm-eval", tok) for it in items] for t, items in loaded.items()}
    return out, prompts, seconds


def compare(task: str, ours: list[list[float]], prompts: list, samples: list[dict]) -> dict:
    """Identical prompts, identical predictions and the largest log-likelihood difference for one task."""
    theirs = [[float(r[0][0]) for r in s["resps"]] for s in samples]
    contexts = [s["arguments"][0][0] if isinstance(s["arguments"][0], (list, tuple)) else s["arguments"]["gen_args_0"]["arg_0"]
                for s in samples]
    conts = [[a[1] for a in s["arguments"]] if isinstance(s["arguments"][0], (list, tuple)) else None for s in samples]
    argmax = lambda x: max(range(len(x)), key=x.__getitem__)  # noqa: E731
    same_prompt = sum(p.prompt == c for p, c in zip(prompts, contexts))
    same_choices = sum(cs is None or [" " + c for c in p.choices] == cs for p, cs in zip(prompts, conts))
    same_pred = sum(argmax(a) == argmax(b) for a, b in zip(ours, theirs))
    diff = max(abs(a - b) for x, y in zip(ours, theirs) for a, b in zip(x, y))
    first_diff = next((i for i, (p, c) in enumerate(zip(prompts, contexts)) if p.prompt != c), None)
    return {"n": len(samples), "identical_prompts": same_prompt, "identical_continuations": same_choices,
            "identical_predictions": same_pred, "max_abs_loglik_difference": diff,
            "first_prompt_difference": None if first_diff is None else {
                "index": first_diff, "medtune": prompts[first_diff].prompt[-300:], "lm_eval": contexts[first_diff][-300:]}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=str(ROOT / "benchmarks/results/vs-lm-eval-nine-tasks-cpu.json"))
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--limit", type=int, default=40, help="first N questions per task")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--order", default="lm-eval-first", choices=["lm-eval-first", "medtune-first"],
                    help="which runs first on the first task; the order alternates task by task")
    ap.add_argument("--rounds", type=int, default=1, help="rounds over all tasks; each reverses the order")
    ap.add_argument("--note", default="", help="recorded in the JSON (e.g. what else shared the machine)")
    ap.add_argument("--write-prompts", metavar="JSON", help="only write lm-eval's contexts for the first rows of "
                    "each task (no model), e.g. tests/data/lm_eval_prompts.json")
    args = ap.parse_args()
    if args.write_prompts:
        write_prompts(Path(args.write_prompts), [t for t in args.tasks.split(",") if t], Path(args.data_dir), 2)
        return

    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from medtune.backend import select_backend
    from medtune.manifest import git_commit, package_versions
    from medtune.models import load_causal_lm, load_tokenizer, resolve_model

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    backend = select_backend(args.device, "float32")
    bs = args.batch_size or (8 if backend.kind == "cpu" else 64)
    ref = resolve_model(args.model)
    tok = load_tokenizer(ref)
    model = load_causal_lm(ref, backend).eval()
    tasks = [t for t in args.tasks.split(",") if t]
    data_dir = Path(args.data_dir)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=bs, device=backend.device)
    with torch.inference_mode():  # warm-up: the first forward pass allocates, for whichever runs first
        model(input_ids=torch.tensor([[1, 2, 3] * 20] * bs, device=backend.device))
    per_task: dict = {}
    meta = {"command": f"{Path(sys.executable).name} benchmarks/vs_lm_eval.py " + " ".join(sys.argv[1:]),
            "commit": git_commit(), "versions": {**package_versions(), "lm_eval": lm_eval.__version__},
            "model": ref.name, "limit_per_task": args.limit, "batch_size": bs, "order": args.order,
            "rounds_asked": args.rounds, "note": args.note}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):  # round 2 reverses round 1's order task by task
            for k, task in enumerate(tasks):  # one task at a time, alternating which of the two runs first
                first = "medtune" if ((k + rnd) % 2 == 0) == (args.order == "medtune-first") else "lm-eval"
                for who in (first, "lm-eval" if first == "medtune" else "medtune"):
                    if who == "lm-eval":
                        samples, t_lm, t_calls = run_lm_eval(lm, [task], data_dir, Path(tmp), args.limit, bs)
                    else:
                        ours, prompts, t_ours = run_medtune(model, tok, [task], data_dir, args.limit, bs,
                                                            backend.device)
                cmp = compare(task, ours[task], prompts[task], samples[task])
                rec = per_task.setdefault(task, dict(cmp, rounds=[]))
                for key in ("identical_prompts", "identical_predictions"):  # the worst round counts
                    rec[key] = min(rec[key], cmp[key])
                rec["max_abs_loglik_difference"] = max(rec["max_abs_loglik_difference"], cmp["max_abs_loglik_difference"])
                rec["rounds"].append({"lm_eval_seconds": t_lm, "lm_eval_model_calls_seconds": t_calls,
                                      "medtune_seconds": t_ours, "ran_first": first, "load_average": os.getloadavg()})
                print(f"round {rnd + 1} {task}: lm-eval {t_lm:.1f} s (model calls {t_calls:.1f} s), "
                      f"medtune {t_ours:.1f} s, ran first: {first}", flush=True)
                out = summary(per_task, meta, backend, torch)
                Path(args.out).write_text(json.dumps(out, indent=2) + "\n")  # after every task: a stop keeps it
    print(json.dumps({k: out[k] for k in ("questions", "identical_prompts", "identical_predictions",
                                          "max_abs_loglik_difference", "rounds", "speedup")}, indent=2))
    for t, r in per_task.items():
        print(f"{t:<28} prompts {r['identical_prompts']}/{r['n']}  predictions {r['identical_predictions']}/{r['n']}"
              f"  max|Δll| {r['max_abs_loglik_difference']:.2e}")


def summary(per_task: dict, meta: dict, backend, torch) -> dict:
    """The record so far: per round the totals over the tasks that finished it, the ratio per round and its spread."""
    import statistics

    from summarize_eval import cpu_model

    n_rounds = max(len(r["rounds"]) for r in per_task.values())
    rounds = []
    for i in range(n_rounds):
        done = {t: r["rounds"][i] for t, r in per_task.items() if len(r["rounds"]) > i}
        lm_s = sum(x["lm_eval_seconds"] for x in done.values())
        calls = sum(x["lm_eval_model_calls_seconds"] for x in done.values())
        ours = sum(x["medtune_seconds"] for x in done.values())
        q = sum(per_task[t]["n"] for t in done)
        rounds.append({"tasks": list(done), "complete": len(done) == len(per_task) and n_rounds >= 1,
                       "questions": q, "lm_eval_seconds": lm_s, "lm_eval_model_calls_seconds": calls,
                       "medtune_seconds": ours, "lm_eval_questions_per_s": q / lm_s, "medtune_questions_per_s": q / ours,
                       "speedup": lm_s / ours, "speedup_vs_lm_eval_model_calls": calls / ours})
    full = [r for r in rounds if len(r["tasks"]) == len(per_task)]
    ratios = [r["speedup"] for r in full] or [rounds[0]["speedup"]]
    per_task_ratios = {t: [x["lm_eval_seconds"] / x["medtune_seconds"] for x in r["rounds"]] for t, r in per_task.items()}
    return {
        "what": "medtune --template lm-eval letter scorer vs lm-evaluation-harness's own task definitions on the "
                "same local data: same process, same fp32 model object, same questions; rounds alternate which "
                "runs first, task by task, and the second round reverses the first",
        **meta,
        "device": {"backend": backend.to_dict(), "cpu": cpu_model(), "cores": os.cpu_count(),
                   "torch_threads": torch.get_num_threads(), "load_average_at_end": os.getloadavg()},
        "questions": sum(r["n"] for r in per_task.values()), "tasks": per_task,
        "identical_predictions": sum(r["identical_predictions"] for r in per_task.values()),
        "identical_prompts": sum(r["identical_prompts"] for r in per_task.values()),
        "max_abs_loglik_difference": max(r["max_abs_loglik_difference"] for r in per_task.values()),
        "rounds": rounds, "complete_rounds": len(full),
        "speedup": statistics.median(ratios), "speedup_min": min(ratios), "speedup_max": max(ratios),
        "speedup_per_task_per_round": per_task_ratios,
    }


if __name__ == "__main__":
    main()
