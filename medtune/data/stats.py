"""Counts per split, subject and answer letter, and duplicate checks, for `medtune data stats`."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from medtune.data.duplicates import NEAR_THRESHOLD, contamination, duplicate_report
from medtune.data.schema import LETTERS, MCQItem


def dataset_stats(items: Sequence[MCQItem], report, against: Sequence[MCQItem] | None = None,
                  threshold: float = NEAR_THRESHOLD) -> dict:
    """A JSON-ready summary of a loaded benchmark."""
    n = len(items)
    stats = {
        "records": n,
        "sources": [{"path": s.path, "format": s.format, "records": s.records, "skipped": s.skipped,
                     "sha256": s.sha256, "answer_base": s.answer_base} for s in report.sources],
        "skipped_rows": len(report.skipped),
        "by_split": dict(sorted(Counter(it.split or "(none)" for it in items).items())),
        "by_letter": {k: v for k, v in sorted(Counter(it.answer_letter for it in items).items())},
        "by_options": {str(k): v for k, v in sorted(Counter(len(it.options) for it in items).items())},
        "by_subject": dict(Counter(it.subject or "(none)" for it in items).most_common()),
        "with_explanation": sum(1 for it in items if it.explanation),
        "with_context": sum(1 for it in items if it.context),
        "with_repeated_option": sum(1 for it in items if len(set(it.options)) < len(it.options)),
        "duplicates": duplicate_report(items, threshold),
    }
    if against is not None:
        stats["contamination"] = contamination(against, items, threshold)
    return stats


def counts_table(groups: dict[str, Sequence[MCQItem]]) -> str:
    """Per group: records, answer letters (count and share) and the largest subjects."""
    lines = []
    for name, items in groups.items():
        n = len(items)
        letters = Counter(it.answer_letter for it in items)
        dist = "  ".join(f"{k} {letters[k]} ({letters[k] / n:.1%})" for k in LETTERS if letters.get(k))
        subj = Counter(it.subject or "(none)" for it in items).most_common(6)
        lines.append(f"{name}: {n} records · letters: {dist}")
        lines.append("  subjects: " + ", ".join(f"{s} {c}" for s, c in subj)
                     + (" …" if len({it.subject for it in items}) > 6 else ""))
    return "\n".join(lines)


def format_stats(stats: dict) -> str:
    """The human-readable form of `dataset_stats`."""
    out = []
    for s in stats["sources"]:
        base = f", answers {s['answer_base']}-based" if s["answer_base"] is not None else ""
        skipped = f", {s['skipped']} bad rows skipped" if s["skipped"] else ""
        out.append(f"{s['path']}: {s['records']} records ({s['format']}{base}{skipped})")
    n = stats["records"]
    out.append(f"total: {n} records")
    out.append("by split: " + ", ".join(f"{k} {v}" for k, v in stats["by_split"].items()))
    out.append("by answer letter: " + "  ".join(f"{k} {v} ({v / n:.1%})" for k, v in stats["by_letter"].items()))
    out.append("options per question: " + ", ".join(f"{k}: {v}" for k, v in stats["by_options"].items()))
    subj = stats["by_subject"]
    out.append(f"by subject ({len(subj)}): " + ", ".join(f"{k} {v}" for k, v in list(subj.items())[:25])
               + (" …" if len(subj) > 25 else ""))
    out.append(f"with explanation: {stats['with_explanation']} · with context: {stats['with_context']}"
               f" · with the same option text twice: {stats.get('with_repeated_option', 0)}")
    d = stats["duplicates"]
    out.append(f"duplicates within: {d['exact_pairs']} exact pairs, {d['near_pairs']} near pairs "
               f"(word-trigram Jaccard ≥ {d['threshold']})")
    if "contamination" in stats:
        c = stats["contamination"]
        out.append(f"contamination against --against: {c['eval_with_exact_twin_in_train']} exact, "
                   f"{c['eval_with_near_twin_in_train']} near")
    return "\n".join(out)
