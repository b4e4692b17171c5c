"""`medtune report RUN [--compare OTHER]`: one self-contained HTML file (plots embedded as PNG) plus the
PNGs beside it: training curves, before/after accuracy with CIs, per-subject accuracy, reliability
diagram, confusion matrices, predicted-letter distribution and the run manifest.

RUN is a training run (its baseline/ and final/ evaluations are read) or an eval folder.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Callable

from medtune.eval.report_plots import (plot_accuracy, plot_bias, plot_confusion, plot_letters, plot_orders,
                                       plot_reliability, plot_risk_coverage, plot_subjects)
from medtune.eval.runs import Evaluation, evaluations

NOTICE = ("Research tool, not medical advice: answers come from a language model, can be wrong, and must not "
          "guide the care of a patient.")


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>' \
           f'{html.escape(alt)}</figcaption></figure>'


def build_report(run: str, compare: str | None = None, out: str | None = None,
                 clean: Callable[[Any], Any] | None = None) -> Path:
    """Write report.html and its PNGs; returns the HTML path. `clean` rewrites every text the page shows
    from the run's files (the manifest, summary, folders) before it is written, e.g. to share it."""
    from medtune.eval.compare import compare_runs
    from medtune.runfolder import RunFolder

    evals, summary = evaluations(run)
    pairs = []
    if len(evals) == 2:
        pairs.append(compare_runs(str(evals[0].folder), str(evals[1].folder)))
    if compare:
        other, _ = evaluations(compare, prefix="other: ")
        evals.append(other[-1])
        pairs.append(compare_runs(str(other[-1].folder), str(evals[-2].folder)))
    src = RunFolder(run)
    dest = RunFolder(out) if out else RunFolder(src.report)
    dest.root.mkdir(parents=True, exist_ok=True)
    folder = dest.root
    figures = [(plot_accuracy(evals, folder / "accuracy.png"), "Accuracy with 95% Wilson intervals")]
    if src.curves.is_file():
        import shutil

        shutil.copyfile(src.curves, dest.curves)
        figures.insert(0, (dest.curves, "Training loss and evaluation accuracy"))
    figures += [(plot_subjects(evals, folder / "subjects.png"), "Accuracy per subject"),
                (plot_reliability(evals, folder / "reliability.png"), "Calibration (reliability diagram)"),
                (plot_confusion(evals, folder / "confusion.png"), "Confusion matrices"),
                (plot_letters(evals, folder / "letters.png"), "Predicted-letter distribution"),
                (plot_bias(evals, folder / "bias.png"), "Selection bias: recall per gold letter")]
    figures += [(p, alt) for p, alt in ((plot_orders(evals, folder / "orders.png"), "Accuracy per option order"),
                                        (plot_risk_coverage(evals, folder / "risk_coverage.png"), "Risk-coverage"))
                if p is not None]
    page = _html(run, evals, summary, pairs, figures, clean or (lambda obj: obj))
    return dest.write_text(folder / "report.html", page)


def _accuracy_rows(evals: list[Evaluation], clean: Callable[[Any], Any]) -> str:
    esc = html.escape
    rows = []
    for e in evals:
        p = e.primary
        rows.append(f"<tr><td>{esc(e.label)}</td><td>{esc(e.metrics['primary'])}</td><td>{p['n']}</td>"
                    f"<td><b>{p['accuracy']:.3f}</b></td><td>[{p['ci95'][0]:.3f}, {p['ci95'][1]:.3f}]</td>"
                    f"<td>{p['macro_f1']:.3f}</td><td>{p['ece']:.3f}</td><td>{esc(clean(str(e.folder)))}</td></tr>")
    return "".join(rows)


def _tests_table(pairs: list[dict]) -> str:
    esc = html.escape
    tests = []
    for c in pairs:
        for r in c["rows"]:
            m = r["mcnemar"]
            tests.append(f"<tr><td>{esc(c['base'])} → {esc(c['new'])}</td><td>{esc(r['result'])}</td>"
                         f"<td>{r['n']}</td><td>{r['difference']:+.3f}</td><td>{m['a_only']}/{m['b_only']}"
                         f"</td><td>{m['p_value']:.4g}</td></tr>")
    if not tests:
        return ""
    return ('<h2>Paired tests (exact McNemar)</h2><table id="tests"><tr><th>pair</th><th>scorer</th>'
            '<th>common questions</th><th>difference</th><th>discordant (base only / new only)</th>'
            '<th>p-value</th></tr>' + "".join(tests) + "</table>")


def _summary_line(summary: dict | None) -> str:
    if not summary:
        return ""
    esc = html.escape
    return (f"<p><b>method</b> {esc(str(summary.get('method')))} · <b>model</b> {esc(str(summary.get('model')))}"
            f" · <b>precision</b> {esc(str(summary.get('precision')))} · <b>steps</b> {summary.get('steps')} · "
            f"<b>train questions</b> {summary.get('train_questions')} · <b>eval questions</b> "
            f"{summary.get('eval_questions')} · <b>split</b> {esc(str((summary.get('split') or {}).get('how')))}"
            f"</p>")


STYLE = """body {font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #111827}
table {border-collapse: collapse; margin: .8em 0} td, th {border: 1px solid #d1d5db; padding: .3em .6em;
font-size: .9em} th {background: #f3f4f6} figure {margin: 1.2em 0} img {max-width: 100%}
figcaption {color: #4b5563; font-size: .9em} .notice {border-left: 4px solid #f59e0b; padding-left: .8em}
pre {background: #f9fafb; padding: 1em; overflow-x: auto; font-size: .8em}"""


def _html(run: str, evals: list[Evaluation], summary: dict | None, pairs: list[dict],
          figures: list[tuple[Path, str]], clean: Callable[[Any], Any]) -> str:
    esc = html.escape
    man, summary, pairs = clean(evals[-1].metrics["manifest"]), clean(summary), clean(pairs)
    title = f"medtune report: {Path(run).resolve().name}"
    b = evals[-1].metrics["baselines"]
    mf = b["most_frequent_letter"]
    beats = evals[-1].primary["accuracy"] > mf["ci95"][1]
    verdict = ("above" if beats else "not above") + \
        f" the always-{mf['letter']!r} baseline's 95% interval ({mf['accuracy']:.3f} [{mf['ci95'][0]:.3f}, " \
        f"{mf['ci95'][1]:.3f}])"
    be = man.get("backend", {})
    figs = "\n".join(_img(p, alt) for p, alt in figures)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
{STYLE}
</style></head><body>
<h1>{esc(title)}</h1>
<p class="notice">{esc(NOTICE)}</p>
{_summary_line(summary)}
<p>Backend: {esc(str(be.get('kind')))} {esc(str(be.get('name')))} ({esc(str(be.get('dtype')))}) ·
medtune {esc(str((man.get('packages') or {}).get('medtune', '')))} · commit {esc(str(man.get('git_commit')))}</p>
<h2>Accuracy</h2>
<table id="accuracy"><tr><th>evaluation</th><th>scorer</th><th>questions</th><th>accuracy</th><th>95% CI</th>
<th>macro-F1</th><th>ECE</th><th>folder</th></tr>{_accuracy_rows(evals, clean)}</table>
<p>Baselines on these questions: chance {b['chance']:.3f}; always {mf['letter']!r} (most frequent gold letter)
{mf['accuracy']:.3f}. The last evaluation is <b id="verdict">{esc(verdict)}</b>.</p>
{_tests_table(pairs)}
<h2>Figures</h2>
{figs}
<h2>Manifest</h2>
<details><summary>versions, backend, data and model hashes, seed</summary>
<pre id="manifest">{esc(json.dumps(man, indent=2, ensure_ascii=False))}</pre></details>
</body></html>
"""
