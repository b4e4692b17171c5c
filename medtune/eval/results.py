"""An evaluation's results: the metrics.json dict, the predictions.jsonl rows, writing both into an eval
folder (medtune.runfolder.RunFolder), and the terminal table."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from medtune.data.schema import LETTERS, MCQItem
from medtune.eval.scorers import SCORERS, ScorerOutput


def _probabilities(outputs: dict[str, ScorerOutput]) -> dict[str, list[list[float]]]:
    from medtune.eval.scoring import softmax

    return {name: [softmax(s) for s in scores] for out in outputs.values() for name, scores in out.scores.items()}


def _predicted(outputs: dict[str, ScorerOutput], probs: dict[str, list[list[float]]]) -> dict[str, list]:
    """Per result name, the chosen option per question: the scorer's own choice where it gives one
    (None: no answer read), else the most probable option."""
    pred = {name: [max(range(len(p)), key=p.__getitem__) for p in ps] for name, ps in probs.items()}
    for out in outputs.values():
        pred.update(out.predicted or {})
    return pred


def token_counts(outputs: dict[str, ScorerOutput], seconds: dict[str, float]) -> dict:
    """Per scorer: tokens run through the model (a shared prefix once) and the questions' own tokens,
    each with its rate (issue: a rate over shared-prefix tokens computed once would overstate speed)."""
    out = {}
    for name, o in outputs.items():
        if not o.tokens:
            continue
        t = seconds.get(name) or 0.0
        row = dict(o.tokens)
        for key in ("processed", "questions"):
            if key in row and t > 0:
                row[f"{key}_per_s"] = row[key] / t
        out[name] = row
    return out


def build_metrics(cfg: Any, items: Sequence[MCQItem], report: Any, outputs: dict[str, ScorerOutput], lo: Any, *,
                  template: str, batch_size: int, max_length: int | None, world: int, timing: dict) -> dict:
    """The metrics.json dict of one evaluation."""
    from medtune.eval import metrics as M
    from medtune.io import sha256_tree
    from medtune.manifest import build_manifest

    gold = [it.answer_index for it in items]
    subjects = [it.subject for it in items]
    probs = _probabilities(outputs)
    pred = _predicted(outputs, probs)
    results = {name: M.summarize(gold, p, subjects, pred[name]) for name, p in probs.items()}
    primary = SCORERS[cfg.scorers[0]].results[0]
    ref, model = lo.ref, lo.model
    manifest = build_manifest(
        backend=lo.backend.to_dict(),
        model={"name": ref.name, "kind": ref.kind, "path": ref.path, "note": ref.note,
               "sha256": sha256_tree(ref.path) if ref.kind != "hub" else None,
               "revision": getattr(model.config, "_commit_hash", None)},
        adapter={"path": cfg.adapter, "sha256": sha256_tree(cfg.adapter) if cfg.adapter and
                 Path(cfg.adapter).is_dir() else None} if cfg.adapter else None,
        data=report.to_dict(), limit=cfg.limit, scorers=cfg.scorers, template=template, seed=cfg.seed,
        batch_size=batch_size, max_length=max_length, processes=world,
    )
    per = timing["per_scorer_s"]
    metrics = {
        "primary": primary, "n_questions": len(items), "results": results,
        "baselines": M.baselines(gold, [len(it.options) for it in items]),
        "truncated_contexts": max([o.truncated for o in outputs.values()] or [0]),
        "timing": {**timing, "questions_per_s": {s: len(items) / t for s, t in per.items() if t > 0},
                   "tokens": token_counts(outputs, per)},
        "manifest": manifest,
    }
    for name, out in outputs.items():  # a scorer's own figures (e.g. unparseable count and rate) beside its result
        first = results[SCORERS[name].results[0]]
        first.update({k: v for k, v in (out.extra or {}).items() if k not in first})
    return metrics


def build_rows(items: Sequence[MCQItem], outputs: dict[str, ScorerOutput], primary: str) -> list[dict]:
    """One predictions.jsonl row per question: the primary result's answer, the others beside it, and
    whatever per-question fields a scorer adds (e.g. the raw generation)."""
    probs = _probabilities(outputs)
    pred = _predicted(outputs, probs)
    scores = {name: s for out in outputs.values() for name, s in out.scores.items()}
    rows = []
    for i, it in enumerate(items):
        row: dict[str, Any] = {"id": it.id, "gold": it.answer_letter, "subject": it.subject}
        for name in probs:
            k = pred[name][i]
            entry = {"predicted": None if k is None else LETTERS[k],
                     "probabilities": [round(x, 6) for x in probs[name][i]],
                     "scores": [round(x, 6) for x in scores[name][i]]}
            if name == primary:
                row.update(entry, correct=k == it.answer_index, scorer=name)
            else:
                row.setdefault("other_scorers", {})[name] = entry
        for out in outputs.values():
            if out.rows:
                row.update(out.rows[i])
        rows.append(row)
    return rows


def write_eval(folder: str, metrics: dict, rows: list[dict]) -> None:
    """metrics.json and predictions.jsonl, atomically, into an eval folder."""
    from medtune.runfolder import RunFolder

    run = RunFolder(folder)
    run.write_predictions(rows)
    run.write_json(run.metrics, metrics)


def format_table(metrics: dict, title: str = "") -> str:
    """A short terminal summary of a metrics dict."""
    lines = [title] if title else []
    lines.append(f"{'scorer':<12}{'accuracy':>9}  {'95% CI':<17}{'macro-F1':>9}{'ECE':>7}  predicted letters")
    for name, r in metrics["results"].items():
        lo, hi = r["ci95"]
        dist = " ".join(f"{k} {v:.0%}" for k, v in r["predicted_letters"].items())
        lines.append(f"{name:<12}{r['accuracy']:>9.3f}  [{lo:.3f}, {hi:.3f}]   {r['macro_f1']:>7.3f}"
                     f"{r['ece']:>7.3f}  {dist}")
        if r.get("unanswered"):
            lines.append(f"{'':<12}unparseable: {r['unanswered']} of {r['n']} ({r['unanswered'] / r['n']:.1%}), "
                         "counted wrong")
    b = metrics["baselines"]
    mf = b["most_frequent_letter"]
    lines.append(f"baselines: chance {b['chance']:.3f} · always {mf['letter']!r} (most frequent gold letter) "
                 f"{mf['accuracy']:.3f}")
    from medtune.eval.robustness import lines as robustness_lines

    lines += robustness_lines(metrics)
    t = metrics["timing"]
    qps = ", ".join(f"{s} {v:.2f} q/s" for s, v in t["questions_per_s"].items())
    be = metrics["manifest"]["backend"]
    more = f" + {t['robustness_s']:.1f} s other orders, prior, calibration" if t.get("robustness_s", 0) > 0.05 else ""
    lines.append(f"{metrics['n_questions']} questions · {t['score_s']:.1f} s scoring ({qps}){more} · "
                 f"{be['kind']} {be['dtype']}")
    for name, tk in (t.get("tokens") or {}).items():
        lines.append(f"{name}: {tk['processed']:,} tokens through the model (shared prefix once), "
                     f"{tk['questions']:,} question tokens" + (f", {tk['processed_per_s']:,.0f} processed tokens/s"
                                                              if "processed_per_s" in tk else ""))
    return "\n".join(lines)
