"""The report's figures: accuracy with CIs, per subject, reliability, confusion, predicted letters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medtune.eval.runs import Evaluation


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
    colors = [(["#111827"] + COLORS)[k % (len(COLORS) + 1)] for k in range(len(series))]
    return _letter_bars(plt, series, letters, colors, "share of questions",
                        "predicted letters against the gold letters", path)


def _letter_bars(plt: Any, series: list, letters: list[str], colors: list[str], ylabel: str, title: str,
                 path: Path) -> Path:
    """Grouped bars: one group per letter, one bar per (name, {letter: value}) series."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    w = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * w for i in range(len(letters))]
        ax.bar(xs, [values.get(x, 0.0) for x in letters], width=w, label=name, color=colors[k])
    ax.set_xticks(range(len(letters)))
    ax.set_xticklabels(letters)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def plot_orders(evals: list[Evaluation], path: Path) -> Path | None:
    """Accuracy per option order (--permute), with the permutation-averaged prediction's; None without orders."""
    rows = [(e, (e.metrics.get("permutation") or {}).get(e.metrics["primary"])) for e in evals]
    rows = [(e, p) for e, p in rows if p]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    w = 0.8 / len(rows)
    for k, (e, p) in enumerate(rows):
        xs = [o["order"] + (k - (len(rows) - 1) / 2) * w for o in p["per_order"]]
        ax.bar(xs, [o["accuracy"] for o in p["per_order"]], width=w, color=COLORS[(k + 1) % len(COLORS)],
               label=f"{e.label}: spread {p['spread']:.3f}")
        ax.axhline(p["averaged"]["accuracy"], color=COLORS[(k + 1) % len(COLORS)], ls="--", lw=1,
                   label=f"{e.label}: permutation-averaged {p['averaged']['accuracy']:.3f}")
    ax.set_xlabel("option order (0: as given; cyclic k: options rotated by k)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    ax.set_title("accuracy per option order")
    return _save(fig, path)


def plot_bias(evals: list[Evaluation], path: Path) -> Path:
    """Per-letter recall (selection bias) of each evaluation, and after the --debias correction where run."""
    series = []
    for e in evals:
        b = e.primary.get("bias")
        if b:
            series.append((f"{e.label} (RStd {b['rstd']:.1%})", b["recall"]))
        d = ((e.metrics.get("debias") or {}).get("results") or {}).get(e.metrics["primary"])
        if d:
            series.append((f"{e.label} debiased (RStd {d['debiased']['bias']['rstd']:.1%})",
                           d["debiased"]["bias"]["recall"]))
    plt = _plt()
    letters = sorted({k for _, r in series for k in r})
    colors = [COLORS[(k + 1) % len(COLORS)] for k in range(len(series))]
    return _letter_bars(plt, series, letters, colors, "recall of questions whose gold is this letter",
                        "selection bias: recall per gold letter (equal bars: no letter preference)", path)


def plot_risk_coverage(evals: list[Evaluation], path: Path) -> Path | None:
    """Risk (error rate) against coverage when only the most confident answers are given."""
    rows = [(e, (e.metrics.get("confidence") or {}).get("risk_coverage")) for e in evals]
    rows = [(e, rc) for e, rc in rows if rc and rc.get("curve")]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for k, (e, rc) in enumerate(rows):
        ax.plot([p["coverage"] for p in rc["curve"]], [p["risk"] for p in rc["curve"]],
                color=COLORS[(k + 1) % len(COLORS)], label=f"{e.label}: AURC {rc['aurc']:.3f}")
    ax.set_xlabel("coverage (share of questions answered, most confident first)")
    ax.set_ylabel("risk (error rate of those answered)")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("risk-coverage")
    return _save(fig, path)
