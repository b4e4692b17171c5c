"""`medtune eval --suite NAME|FILE`: several tasks scored by one loaded model, one table, the unweighted
average as a leaderboard computes it, and the results in lm-evaluation-harness's `results` JSON shape.

A suite is a YAML file (built-in ones in medtune/resources/suites/, e.g. open-medical-llm): a default
template and scorer, and per task where its questions come from (the Hub dataset lm-eval reads, a
file under --data-dir, or the task's own `data:`). Which data and split each task ran on is reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError, did_you_mean

SUITES_DIR = Path(__file__).resolve().parent.parent / "resources" / "suites"
TASK_KEYS = ("source", "split", "local", "local_split", "filter", "data", "template", "metrics")


@dataclass(frozen=True)
class Task:
    """One task of a suite: its name (lm-eval's) and where its questions come from."""

    name: str
    source: str | None = None       # Hub dataset (hf:ID[:CONFIG]:SPLIT) lm-eval reads
    split: str | None = None        # the split `source` is
    local: str | None = None        # file under --data-dir
    local_split: str | None = None  # what that file is (e.g. dev where lm-eval uses test)
    filter: str | None = None       # keep one official split of a file holding several
    data: str | None = None         # the task's own data (path or hf:), overriding the rest
    template: str | None = None
    metrics: tuple[str, ...] = ("acc",)


@dataclass(frozen=True)
class Suite:
    """A named set of tasks with a default template and scorer."""

    name: str
    tasks: tuple[Task, ...]
    title: str = ""
    template: str = "lm-eval"
    scorer: str = "letter"
    path: str = ""


def load_suite(name: str) -> Suite:
    """A built-in suite by name (open-medical-llm) or a suite YAML file."""
    import yaml

    builtin = SUITES_DIR / f"{name}.yaml"
    path = builtin if "/" not in name and builtin.is_file() else Path(name)
    if not path.is_file():
        names = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
        raise MedtuneError(f"unknown suite {name!r}{did_you_mean(name, names)}; choose one of "
                           f"{', '.join(names)} or a suite .yaml file", field="--suite")
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise MedtuneError(f"invalid YAML: {getattr(err, 'problem', err)}", path=str(path),
                           line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict) or not data["tasks"]:
        raise MedtuneError("a suite file maps `tasks:` to one entry per task", path=str(path), field="tasks")
    tasks = []
    for tname, spec in data["tasks"].items():
        spec = spec or {}
        if isinstance(spec, str):
            spec = {"data": spec}
        unknown = sorted(set(spec) - set(TASK_KEYS))
        if unknown:
            raise MedtuneError(f"unknown key {unknown[0]!r}{did_you_mean(unknown[0], TASK_KEYS)}", path=str(path),
                               field=f"tasks.{tname}.{unknown[0]}")
        if not (spec.get("data") or spec.get("source") or spec.get("local")):
            raise MedtuneError("name the task's questions: data, source or local", path=str(path),
                               field=f"tasks.{tname}")
        if spec.get("data") and not str(spec["data"]).startswith("hf:") and not Path(spec["data"]).is_absolute():
            spec["data"] = str(path.parent / spec["data"])
        spec["metrics"] = tuple(spec.get("metrics") or ("acc",))
        tasks.append(Task(name=str(tname), **spec))
    return Suite(name=str(data.get("name") or path.stem), tasks=tuple(tasks), title=str(data.get("title") or ""),
                 template=str(data.get("template") or "lm-eval"), scorer=str(data.get("scorer") or "letter"),
                 path=str(path))


@dataclass
class Resolved:
    """Where a task's questions come from in this run, and how that differs from the suite's default."""

    task: Task
    spec: str
    split: str | None
    kind: str  # "task data", "local" or "hub"
    note: str = ""
    options: dict = field(default_factory=dict)


def resolve_task(task: Task, data_dir: str | None) -> Resolved:
    """The task's own data, else its file under data_dir when present, else the Hub dataset."""
    if task.data:
        return Resolved(task, task.data, task.split, "task data", options={"split": task.filter})
    if data_dir and task.local:
        path = Path(data_dir) / task.local
        if path.exists():
            split = task.local_split or task.split
            note = f"{split} instead of {task.split}" if task.split and split != task.split else ""
            return Resolved(task, str(path), split, "local", note, {"split": task.filter})
    if task.source:
        note = f"no {task.local} under {data_dir}" if data_dir and task.local else ""
        return Resolved(task, task.source, task.split, "hub", note)
    raise MedtuneError(f"task {task.name}: no {task.local} under {data_dir or '(no --data-dir)'} and no Hub source",
                       field="--data-dir")


def run_suite(suite: str | Suite, cfg: Any, *, data_dir: str | None = None, model: Any = None,
              tokenizer: Any = None) -> dict:
    """Score every task of the suite with one loaded model; write per-task eval folders, suite.json and
    lm-eval's results.json under cfg.out; return the suite summary (see `format_suite`)."""
    import dataclasses

    from medtune.config import default_of
    from medtune.data.sources import LoadOptions, load_benchmark
    from medtune.eval.run import evaluate_items, load_for_eval
    from medtune.runfolder import RunFolder

    s = suite if isinstance(suite, Suite) else load_suite(suite)
    template = cfg.template if cfg.template != "auto" else s.template
    default = default_of(next(f for f in dataclasses.fields(cfg) if f.name == "scorers"))
    scorers = cfg.scorers if cfg.scorers != default else [s.scorer]  # not asked for: the suite's own
    resolved = [resolve_task(t, data_dir) for t in s.tasks]
    loaded = load_for_eval(cfg, model, tokenizer)
    rows, t_all = [], time.perf_counter()
    for r in resolved:
        base = cfg.load_options or LoadOptions()
        items, report = load_benchmark([r.spec], dataclasses.replace(base, split=r.options.get("split")))
        n_total = len(items)
        items = items[: cfg.limit] if cfg.limit else items
        tcfg = dataclasses.replace(cfg, data=[r.spec], template=r.task.template or template, scorers=scorers,
                                   out=str(RunFolder(cfg.out).root / r.task.name) if cfg.out else None)
        t0 = time.perf_counter()
        metrics = evaluate_items(tcfg, items, report, loaded=loaded)
        rows.append(_task_row(r, metrics, time.perf_counter() - t0, n_total))
    summary = _summary(s, rows, time.perf_counter() - t_all, cfg, loaded, template, scorers)
    if cfg.out:
        from medtune.eval.lmeval import results_json

        out = RunFolder(cfg.out)
        out.write_json(out.root / "suite.json", summary)
        out.write_json(out.root / "results.json", results_json(summary))
    return summary


def _task_row(r: Resolved, metrics: dict, seconds: float, n_total: int) -> dict:
    res = metrics["results"][metrics["primary"]]
    row = {"task": r.task.name, "data": r.spec, "kind": r.kind, "split": r.split, "note": r.note,
           "n": res["n"], "n_total": n_total, "correct": res["correct"], "accuracy": res["accuracy"], "ci95": res["ci95"],
           "unanswered": res.get("unanswered", 0), "seconds": seconds, "metrics": list(r.task.metrics),
           "truncated_contexts": metrics["truncated_contexts"], "tokens": metrics["timing"].get("tokens")}
    p = (metrics.get("permutation") or {}).get(metrics["primary"])
    if p:  # --permute: the task's option-order figures for its primary result (as its metrics.json has them)
        row["permutation"] = {"orders": p["orders"], "averaged_accuracy": p["averaged"]["accuracy"],
                              "averaged_ci95": p["averaged"]["ci95"], "spread": p["spread"], "std": p["std"],
                              "mean_accuracy": p["mean_accuracy"],
                              "per_order": [o["accuracy"] for o in p["per_order"]],
                              "correct_every_order": p["correct_every_order"], "consistency": p["consistency"],
                              "rstd_pooled": p["bias_pooled"]["rstd"]}
    return row


def _summary(s: Suite, rows: list[dict], seconds: float, cfg: Any, loaded: Any, template: str,
             scorers: list[str]) -> dict:
    from medtune.manifest import build_manifest

    average = sum(r["accuracy"] for r in rows) / len(rows)
    out = {"suite": s.name, "title": s.title, "suite_file": s.path, "tasks": rows,
           "average": average, "average_rule": "unweighted mean of the task accuracies (the leaderboard's)",
           "seconds": seconds, "model": loaded.ref.name, "adapter": cfg.adapter, "template": template,
           "scorer": scorers[0], "limit": cfg.limit, "permute": cfg.permute,
           "manifest": build_manifest(backend=loaded.backend.to_dict(), model={"name": loaded.ref.name,
                                      "path": loaded.ref.path}, suite=s.name, limit=cfg.limit, permute=cfg.permute)}
    if cfg.permute:
        out["average_permutation"] = {k: sum(r["permutation"][k] for r in rows) / len(rows)
                                      for k in ("averaged_accuracy", "spread")}
    return out


def format_suite(summary: dict) -> str:
    """The suite's table: per task accuracy, 95% CI, n, data and split, time; then the average. With --permute,
    two columns more: the permutation-averaged accuracy and the spread of the accuracy over option orders."""
    perm = summary.get("permute")
    head = f"{summary['title'] or summary['suite']}: {summary['model']} · template {summary['template']} · " \
           f"scorer {summary['scorer']}" + (f" · first {summary['limit']} per task" if summary["limit"] else "") \
           + (f" · option orders {perm} (perm-avg: permutation-averaged accuracy; spread: best - worst order)"
              if perm else "")
    lines = [head, f"{'task':<30}{'accuracy':>9}  {'95% CI':<17}" + (f"{'perm-avg':>9}{'spread':>8}" if perm else "")
             + f"{'n':>6}{'time':>8}  data (split)"]
    for r in summary["tasks"]:
        lo, hi = r["ci95"]
        where = f"{r['kind']} {r['data']} ({r['split'] or '?'}" + (f"; {r['note']}" if r["note"] else "") + ")"
        p = r.get("permutation")
        cols = f"{p['averaged_accuracy']:>9.3f}{p['spread']:>8.3f}" if p else ""
        lines.append(f"{r['task']:<30}{r['accuracy']:>9.3f}  [{lo:.3f}, {hi:.3f}]  {cols}{r['n']:>6}"
                     f"{r['seconds']:>7.1f}s  {where}")
    a = summary.get("average_permutation")
    cols = f"{a['averaged_accuracy']:>9.3f}{a['spread']:>8.3f}" if a else ""
    lines.append(f"{'average (unweighted)':<30}{summary['average']:>9.3f}  {'':<17}{cols}"
                 f"{sum(r['n'] for r in summary['tasks']):>6}{summary['seconds']:>7.1f}s")
    return "\n".join(lines)
