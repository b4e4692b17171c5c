"""`medtune eval`: score a model on a benchmark and write metrics.json and predictions.jsonl."""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from medtune.data.schema import LETTERS, MCQItem
from medtune.errors import MedtuneError, did_you_mean

SCORERS = ("letter", "cloze", "choice")
# the result names each scorer reports ("choice": an encoder's multiple-choice head)
RESULTS = {"letter": ("letter",), "cloze": ("cloze", "cloze_norm", "cloze_mean"), "choice": ("choice",)}


@dataclass
class EvalConfig:
    """Everything `medtune eval` needs; the CLI flags of the same names fill it."""

    data: list[str]
    model: str | None = None
    adapter: str | None = None
    out: str | None = None
    scorers: list[str] = field(default_factory=lambda: ["letter"])
    template: str = "auto"
    limit: int | None = None
    batch_size: int | None = None
    max_length: int | None = None
    seed: int = 0
    device: str | None = None
    dtype: str = "auto"
    trust_remote_code: bool = False
    progress: bool = True
    load_options: Any = None  # medtune.data.sources.LoadOptions; None: defaults
    # under `accelerate launch`/`torchrun`, split the questions between the processes (False: this
    # process scores them all, e.g. when only one process of a training group evaluates)
    distributed: bool = True

    def __post_init__(self) -> None:
        user_facing = SCORERS[:2]  # "choice" is set by medtune itself for encoders
        for s in self.scorers:
            if s not in SCORERS:
                raise MedtuneError(f"unknown scorer {s!r}{did_you_mean(s, user_facing)}; choose from "
                                   f"{', '.join(user_facing)}", field="--scorer")
        if self.limit is not None and self.limit < 1:
            raise MedtuneError(f"must be a positive number of questions, got {self.limit}", field="--limit")
        if self.batch_size is not None and self.batch_size < 1:
            raise MedtuneError(f"must be at least 1, got {self.batch_size}", field="--batch-size")


def score_items(model: Any, tokenizer: Any, items: Sequence[MCQItem], scorer: str, template: str, *,
                batch_size: int, device: str, max_length: int | None = None, progress: bool = False,
                processes: tuple[int, int] = (0, 1)) -> tuple[dict[str, list[list[float]]], int]:
    """Option scores per result name (e.g. letter; cloze, cloze_norm, cloze_mean), and how many
    contexts were truncated. `processes`: (rank, world) to split the questions between processes."""
    from tqdm.auto import tqdm

    from medtune.data.prompts import render
    from medtune.eval.scoring import build_request, score_requests
    from medtune.train.multiple_choice import is_multiple_choice, score_items_mc

    if is_multiple_choice(model):
        with tqdm(total=len(items), desc="scoring (choice)", unit="q", disable=not progress or None,
                  file=sys.stderr) as bar:
            return {"choice": score_items_mc(model, tokenizer, items, batch_size=batch_size, device=device,
                                             progress=bar)}, 0
    cloze = scorer == "cloze"
    rendered = [render(it, template, tokenizer, cloze=cloze) for it in items]
    requests = [build_request(tokenizer, p.prompt, p.choices) for p in rendered]
    rank, world = processes
    desc = f"scoring ({scorer})" + (f" · process 1 of {world}" if world > 1 else "")
    bar = tqdm(total=-(-len(items) // world), desc=desc, unit="q", disable=not progress or rank != 0 or None,
               file=sys.stderr)
    try:
        scores = score_requests(model, requests, batch_size=batch_size, max_length=max_length,
                                pad_id=tokenizer.pad_token_id, device=device, progress=bar,
                                processes=processes)
    finally:
        bar.close()
    out = {"letter" if not cloze else "cloze": [s.logliks for s in scores]}
    if cloze:
        out["cloze_norm"] = [[ll / max(1, len(c)) for ll, c in zip(s.logliks, p.choices)]
                             for s, p in zip(scores, rendered)]
        out["cloze_mean"] = [[ll / n for ll, n in zip(s.logliks, s.n_tokens)] for s in scores]
    return out, sum(s.truncated for s in scores)


def run_eval(cfg: EvalConfig) -> dict:
    """Load, score, measure and write the results folder; returns the metrics dict."""
    items, report = load_items(cfg)
    return evaluate_items(cfg, items, report)


def load_items(cfg: EvalConfig) -> tuple[list[MCQItem], Any]:
    """Load the benchmark named by the config, honouring --limit (the first N questions)."""
    from medtune.data.sources import load_benchmark

    items, report = load_benchmark(cfg.data, cfg.load_options)
    if cfg.limit is not None:
        items = items[: cfg.limit]
    return items, report


def evaluate_items(cfg: EvalConfig, items: list[MCQItem], report: Any, model: Any = None,
                   tokenizer: Any = None) -> dict:
    """Score loaded items with the configured model and write metrics.json and predictions.jsonl."""
    import torch

    from medtune.backend import default_batch_size, processes, select_backend
    from medtune.data.prompts import resolve_template
    from medtune.eval import metrics as M
    from medtune.eval.scoring import softmax
    from medtune.io import atomic_write_json, atomic_write_jsonl, sha256_tree
    from medtune.manifest import build_manifest
    from medtune.models import load_model, load_tokenizer, resolve_model
    from medtune.train.multiple_choice import is_multiple_choice

    torch.manual_seed(cfg.seed)
    rank, world = processes() if cfg.distributed else (0, 1)
    backend = select_backend(cfg.device, cfg.dtype)
    ref = resolve_model(cfg.model)
    if ref.note and model is None and rank == 0:
        print(f"medtune: model {ref.name}: {ref.note}", file=sys.stderr)
    t_load = time.perf_counter()
    if tokenizer is None:
        tokenizer = load_tokenizer(ref, cfg.trust_remote_code)
    if model is None:
        model = load_model(ref, backend, cfg.adapter, cfg.trust_remote_code)
    load_s = time.perf_counter() - t_load
    if is_multiple_choice(model):
        cfg = dataclasses.replace(cfg, scorers=["choice"], template="none")
        template = "none"
    else:
        template = resolve_template(cfg.template, tokenizer)
    batch_size = cfg.batch_size or default_batch_size(backend)
    max_length = cfg.max_length or _model_max_length(model)

    t0 = time.perf_counter()
    results_scores: dict[str, list[list[float]]] = {}
    truncated = 0
    timings = {}
    for scorer in cfg.scorers:
        ts = time.perf_counter()
        got, cut = score_items(model, tokenizer, items, scorer, template, batch_size=batch_size,
                               device=backend.device, max_length=max_length, progress=cfg.progress,
                               processes=(rank, world))
        timings[scorer] = time.perf_counter() - ts
        results_scores.update(got)
        truncated = max(truncated, cut)
    wall = time.perf_counter() - t0

    gold = [it.answer_index for it in items]
    subjects = [it.subject for it in items]
    probs = {name: [softmax(s) for s in scores] for name, scores in results_scores.items()}
    results = {name: M.summarize(gold, p, subjects) for name, p in probs.items()}
    primary = RESULTS[cfg.scorers[0]][0]

    manifest = build_manifest(
        backend=backend.to_dict(),
        model={"name": ref.name, "kind": ref.kind, "path": ref.path, "note": ref.note,
               "sha256": sha256_tree(ref.path) if ref.kind != "hub" else None,
               "revision": getattr(model.config, "_commit_hash", None)},
        adapter={"path": cfg.adapter, "sha256": sha256_tree(cfg.adapter) if cfg.adapter and
                 Path(cfg.adapter).is_dir() else None} if cfg.adapter else None,
        data=report.to_dict(), limit=cfg.limit, scorers=cfg.scorers, template=template, seed=cfg.seed,
        batch_size=batch_size, max_length=max_length, processes=world,
    )
    metrics = {
        "primary": primary,
        "n_questions": len(items),
        "results": results,
        "baselines": M.baselines(gold, [len(it.options) for it in items]),
        "truncated_contexts": truncated,
        "timing": {"load_s": load_s, "score_s": wall, "per_scorer_s": timings,
                   "questions_per_s": {s: len(items) / t for s, t in timings.items() if t > 0}},
        "manifest": manifest,
    }
    rows = []
    for i, it in enumerate(items):
        row = {"id": it.id, "gold": it.answer_letter, "subject": it.subject}
        for name in probs:
            p = probs[name][i]
            pred = max(range(len(p)), key=lambda j: p[j])
            entry = {"predicted": LETTERS[pred], "probabilities": [round(x, 6) for x in p],
                     "scores": [round(x, 6) for x in results_scores[name][i]]}
            if name == primary:
                row.update(entry, correct=pred == it.answer_index, scorer=name)
            else:
                row.setdefault("other_scorers", {})[name] = entry
        rows.append(row)
    if cfg.out and rank == 0:
        out = Path(cfg.out)
        atomic_write_jsonl(out / "predictions.jsonl", rows)
        atomic_write_json(out / "metrics.json", metrics)
    return metrics


def _model_max_length(model: Any) -> int | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "max_position_embeddings", None)


def format_table(metrics: dict, title: str = "") -> str:
    """A short terminal summary of a metrics dict."""
    lines = [title] if title else []
    lines.append(f"{'scorer':<12}{'accuracy':>9}  {'95% CI':<17}{'macro-F1':>9}{'ECE':>7}  predicted letters")
    for name, r in metrics["results"].items():
        lo, hi = r["ci95"]
        dist = " ".join(f"{k} {v:.0%}" for k, v in r["predicted_letters"].items())
        lines.append(f"{name:<12}{r['accuracy']:>9.3f}  [{lo:.3f}, {hi:.3f}]   {r['macro_f1']:>7.3f}"
                     f"{r['ece']:>7.3f}  {dist}")
    b = metrics["baselines"]
    mf = b["most_frequent_letter"]
    lines.append(f"baselines: chance {b['chance']:.3f} · always {mf['letter']!r} (most frequent gold letter) "
                 f"{mf['accuracy']:.3f}")
    t = metrics["timing"]
    qps = ", ".join(f"{s} {v:.2f} q/s" for s, v in t["questions_per_s"].items())
    be = metrics["manifest"]["backend"]
    lines.append(f"{metrics['n_questions']} questions · {t['score_s']:.1f} s scoring ({qps}) · "
                 f"{be['kind']} {be['dtype']}")
    return "\n".join(lines)
