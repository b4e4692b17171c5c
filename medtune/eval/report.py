"""`medtune report RUN [--compare OTHER]`: one self-contained HTML file (plots embedded as PNG) plus the
PNGs beside it: training curves, before/after accuracy with CIs, per-subject accuracy, reliability
diagram, confusion matrices, predicted-letter distribution and the run manifest.

RUN is a training run (its baseline/ and final/ evaluations are read) or an eval folder.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError
from medtune.io import load_json
from medtune.serve.answer import NOTICE


@dataclass
class Evaluation:
    label: str
    folder: Path
    metrics: dict

    @property
    def primary(self) -> dict:
        return self.metrics["results"][self.metrics["primary"]]


def evaluations(folder: str, prefix: str = "") -> tuple[list[Evaluation], dict | None]:
    """The evaluations in a run folder (before, after) or an eval folder, and the run summary if any."""
    path = Path(folder)
    if not path.is_dir():
        raise MedtuneError("no such folder", path=folder)
    if (path / "final" / "metrics.json").is_file():
        summary = load_json(path / "metrics.json") if (path / "metrics.json").is_file() else None
        out = []
        if (path / "baseline" / "metrics.json").is_file():
            out.append(Evaluation(f"{prefix}before", path / "baseline", load_json(path / "baseline" / "metrics.json")))
        out.append(Evaluation(f"{prefix}after", path / "final", load_json(path / "final" / "metrics.json")))
        return out, summary
    if (path / "metrics.json").is_file():
        m = load_json(path / "metrics.json")
        if "results" in m:
            return [Evaluation(prefix + (path.name or "eval"), path, m)], None
    raise MedtuneError("not a medtune run or eval folder (no final/metrics.json or metrics.json with "
                       "results)", path=folder)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    from medtune.io import atomic_savefig

    fig.tight_layout()
    return atomic_savefig(fig, path, dpi=110)


COLORS = ["#9ca3af", "#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6"]


def plot_accuracy(evals: list[Evaluation], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    names = [e.label for e in evals]
    acc = [e.primary["accuracy"] for e in evals]
    lo = [a - e.primary["ci95"][0] for a, e in zip(acc, evals)]
    hi = [e.primary["ci95"][1] - a for a, e in zip(acc, evals)]
    ax.bar(names, acc, yerr=[lo, hi], capsize=6, color=COLORS[: len(evals)])
    for i, a in enumerate(acc):
        ax.text(i, a + hi[i] + 0.01, f"{a:.3f}", ha="center", fontsize=9)
    b = evals[-1].metrics["baselines"]
    mf = b["most_frequent_letter"]
    ax.axhline(b["chance"], color="black", ls=":", lw=1, label=f"chance {b['chance']:.3f}")
    ax.axhline(mf["accuracy"], color="#dc2626", ls="--", lw=1,
               label=f"always {mf['letter']!r} {mf['accuracy']:.3f}")
    ax.set_ylabel(f"accuracy ({evals[-1].metrics['primary']} scorer), 95% CI")
    ax.set_ylim(0, max(1e-9, max(a + h for a, h in zip(acc, hi)) * 1.25, mf["accuracy"] * 1.25))
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"accuracy on {evals[-1].metrics['n_questions']} questions")
    return _save(fig, path)


def plot_subjects(evals: list[Evaluation], path: Path, top: int = 20) -> Path:
    plt = _plt()
    last = evals[-1].primary["per_subject"]
    subjects = sorted(last, key=lambda s: -last[s]["n"])[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(subjects) * max(1, len(evals) * 0.6) + 1.2))
    h = 0.8 / len(evals)
    for k, e in enumerate(evals):
        per = e.primary["per_subject"]
        ys = [i + (k - (len(evals) - 1) / 2) * h for i in range(len(subjects))]
        acc = [per.get(s, {}).get("accuracy", 0.0) for s in subjects]
        err = [[a - per.get(s, {}).get("ci95", [a, a])[0] for a, s in zip(acc, subjects)],
               [per.get(s, {}).get("ci95", [a, a])[1] - a for a, s in zip(acc, subjects)]]
        ax.barh(ys, acc, height=h, xerr=err, capsize=2, color=COLORS[k % len(COLORS)], label=e.label,
                error_kw={"lw": 0.7})
    ax.set_yticks(range(len(subjects)))
    ax.set_yticklabels([f"{s} (n={last[s]['n']})" for s in subjects], fontsize=8)
    ax.set_xlabel("accuracy (95% CI)")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("accuracy per subject" + (f" (largest {top})" if len(last) > top else ""))
    return _save(fig, path)


def plot_reliability(evals: list[Evaluation], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], color="black", ls=":", lw=1, label="perfect calibration")
    for k, e in enumerate(evals):
        bins = [b for b in e.primary["reliability"] if b["n"]]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-",
                color=COLORS[k % len(COLORS)], label=f"{e.label} (ECE {e.primary['ece']:.3f})")
        for b in bins:
            ax.annotate(str(b["n"]), (b["confidence"], b["accuracy"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xlabel("confidence (probability of the chosen option)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("reliability (questions per bin annotated)")
    return _save(fig, path)


def plot_confusion(evals: list[Evaluation], path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, len(evals), figsize=(3.6 * len(evals), 3.5), squeeze=False)
    for ax, e in zip(axes[0], evals):
        c = e.primary["confusion"]
        m = c["rows_gold_cols_pred"]
        ax.imshow(m, cmap="Blues")
        for i, row in enumerate(m):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                        color="white" if v > max(map(max, m)) / 2 else "black")
        ax.set_xticks(range(len(c["labels"])))
        ax.set_xticklabels(c["labels"])
        ax.set_yticks(range(len(c["labels"])))
        ax.set_yticklabels(c["labels"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(e.label)
    fig.suptitle("confusion matrix")
    return _save(fig, path)


def plot_letters(evals: list[Evaluation], path: Path) -> Path:
    plt = _plt()
    gold = evals[-1].metrics["baselines"]["gold_letters"]
    letters = sorted(set(gold) | {k for e in evals for k in e.primary["predicted_letters"]})
    series = [("gold answers", gold)] + [(e.label, e.primary["predicted_letters"]) for e in evals]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    w = 0.8 / len(series)
    for k, (name, dist) in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * w for i in range(len(letters))]
        ax.bar(xs, [dist.get(x, 0.0) for x in letters], width=w, label=name,
               color=(["#111827"] + COLORS)[k % (len(COLORS) + 1)])
    ax.set_xticks(range(len(letters)))
    ax.set_xticklabels(letters)
    ax.set_ylabel("share of questions")
    ax.legend(fontsize=8)
    ax.set_title("predicted letters against the gold letters")
    return _save(fig, path)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>' \
           f'{html.escape(alt)}</figcaption></figure>'


def build_report(run: str, compare: str | None = None, out: str | None = None) -> Path:
    """Write report.html and its PNGs; returns the HTML path."""
    from medtune.eval.compare import compare_runs
    from medtune.io import atomic_write_text

    evals, summary = evaluations(run)
    pairs = []
    if len(evals) == 2:
        pairs.append(compare_runs(str(evals[0].folder), str(evals[1].folder)))
    if compare:
        other, _ = evaluations(compare, prefix="other: ")
        evals.append(other[-1])
        pairs.append(compare_runs(str(other[-1].folder), str(evals[-2].folder)))
    folder = Path(out) if out else Path(run) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    figures = [(plot_accuracy(evals, folder / "accuracy.png"), "Accuracy with 95% Wilson intervals")]
    curves = Path(run) / "curves.png"
    if curves.is_file():
        import shutil

        shutil.copyfile(curves, folder / "curves.png")
        figures.insert(0, (folder / "curves.png", "Training loss and evaluation accuracy"))
    figures += [(plot_subjects(evals, folder / "subjects.png"), "Accuracy per subject"),
                (plot_reliability(evals, folder / "reliability.png"), "Calibration (reliability diagram)"),
                (plot_confusion(evals, folder / "confusion.png"), "Confusion matrices"),
                (plot_letters(evals, folder / "letters.png"), "Predicted-letter distribution")]
    page = _html(run, evals, summary, pairs, figures)
    return atomic_write_text(folder / "report.html", page)


def _html(run: str, evals: list[Evaluation], summary: dict | None, pairs: list[dict],
          figures: list[tuple[Path, str]]) -> str:
    esc = html.escape
    last = evals[-1].metrics
    man = last["manifest"]
    title = f"medtune report: {Path(run).resolve().name}"
    rows = []
    for e in evals:
        p = e.primary
        rows.append(f"<tr><td>{esc(e.label)}</td><td>{esc(e.metrics['primary'])}</td><td>{p['n']}</td>"
                    f"<td><b>{p['accuracy']:.3f}</b></td><td>[{p['ci95'][0]:.3f}, {p['ci95'][1]:.3f}]</td>"
                    f"<td>{p['macro_f1']:.3f}</td><td>{p['ece']:.3f}</td><td>{esc(str(e.folder))}</td></tr>")
    b = last["baselines"]
    mf = b["most_frequent_letter"]
    tests = []
    for c in pairs:
        for r in c["rows"]:
            m = r["mcnemar"]
            tests.append(f"<tr><td>{esc(c['base'])} → {esc(c['new'])}</td><td>{esc(r['result'])}</td>"
                         f"<td>{r['n']}</td><td>{r['difference']:+.3f}</td><td>{m['a_only']}/{m['b_only']}"
                         f"</td><td>{m['p_value']:.4g}</td></tr>")
    beats = evals[-1].primary["accuracy"] > mf["ci95"][1]
    verdict = ("above" if beats else "not above") + \
        f" the always-{mf['letter']!r} baseline's 95% interval ({mf['accuracy']:.3f} [{mf['ci95'][0]:.3f}, " \
        f"{mf['ci95'][1]:.3f}])"
    info = ""
    if summary:
        info = (f"<p><b>method</b> {esc(str(summary.get('method')))} · <b>model</b> {esc(str(summary.get('model')))}"
                f" · <b>precision</b> {esc(str(summary.get('precision')))} · <b>steps</b> {summary.get('steps')} · "
                f"<b>train questions</b> {summary.get('train_questions')} · <b>eval questions</b> "
                f"{summary.get('eval_questions')} · <b>split</b> {esc(str((summary.get('split') or {}).get('how')))}"
                f"</p>")
    be = man.get("backend", {})
    figs = "\n".join(_img(p, alt) for p, alt in figures)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #111827}}
table {{border-collapse: collapse; margin: .8em 0}} td, th {{border: 1px solid #d1d5db; padding: .3em .6em;
font-size: .9em}} th {{background: #f3f4f6}} figure {{margin: 1.2em 0}} img {{max-width: 100%}}
figcaption {{color: #4b5563; font-size: .9em}} .notice {{border-left: 4px solid #f59e0b; padding-left: .8em}}
pre {{background: #f9fafb; padding: 1em; overflow-x: auto; font-size: .8em}}
</style></head><body>
<h1>{esc(title)}</h1>
<p class="notice">{esc(NOTICE)}</p>
{info}
<p>Backend: {esc(str(be.get('kind')))} {esc(str(be.get('name')))} ({esc(str(be.get('dtype')))}) ·
medtune {esc(str((man.get('packages') or {}).get('medtune', '')))} · commit {esc(str(man.get('git_commit')))}</p>
<h2>Accuracy</h2>
<table id="accuracy"><tr><th>evaluation</th><th>scorer</th><th>questions</th><th>accuracy</th><th>95% CI</th>
<th>macro-F1</th><th>ECE</th><th>folder</th></tr>{''.join(rows)}</table>
<p>Baselines on these questions: chance {b['chance']:.3f}; always {mf['letter']!r} (most frequent gold letter)
{mf['accuracy']:.3f}. The last evaluation is <b id="verdict">{esc(verdict)}</b>.</p>
{'<h2>Paired tests (exact McNemar)</h2><table id="tests"><tr><th>pair</th><th>scorer</th><th>common questions</th>'
 '<th>difference</th><th>discordant (base only / new only)</th><th>p-value</th></tr>' + ''.join(tests) + '</table>'
 if tests else ''}
<h2>Figures</h2>
{figs}
<h2>Manifest</h2>
<details><summary>versions, backend, data and model hashes, seed</summary>
<pre id="manifest">{esc(json.dumps(man, indent=2, ensure_ascii=False))}</pre></details>
</body></html>
"""
