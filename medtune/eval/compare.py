"""`medtune eval --compare A B`: two eval folders side by side, paired on the same questions."""

from __future__ import annotations

import json
from pathlib import Path

from medtune.errors import MedtuneError
from medtune.eval.metrics import mcnemar, wilson_ci
from medtune.runfolder import RunFolder


def _read_run(folder: str) -> tuple[dict, dict[str, dict]]:
    run = RunFolder(folder)
    for p in (run.metrics, run.predictions):
        if not p.is_file():
            raise MedtuneError("missing: not a medtune eval folder", path=str(p))
    return run.read_json(run.metrics), read_predictions(run.predictions)


def read_predictions(path: Path, field: str = "json") -> dict[str, dict]:
    """An eval's predictions.jsonl rows by question id; a bad line is a one-line error naming file and line."""
    preds = {}
    for no, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        try:
            row = json.loads(line)
        except ValueError as err:
            raise MedtuneError(f"invalid JSON: {err}", path=str(path), line=no, field=field) from None
        if not isinstance(row, dict) or "id" not in row or "predicted" not in row:
            raise MedtuneError("not a medtune predictions row (needs id and predicted)", path=str(path), line=no,
                               field=field)
        preds[row["id"]] = row
    return preds


def correctness(row: dict, result: str) -> bool | None:
    """Whether one prediction row got `result` (a scorer's result name) right; None if absent."""
    if row.get("scorer") == result:
        return row["predicted"] == row["gold"]
    other = (row.get("other_scorers") or {}).get(result)
    return None if other is None else other["predicted"] == row["gold"]


def bias(rows: dict[str, dict], ids: list[str], result: str) -> dict | None:
    """Selection bias (RStd, KL, per-letter recall) of one run's `result` on the given questions."""
    from medtune.data.schema import LETTERS
    from medtune.eval.bias import selection_bias

    picks = [(r, r if r.get("scorer") == result else (r.get("other_scorers") or {}).get(result))
             for r in (rows[i] for i in ids)]
    if any(p is None or "probabilities" not in p for _, p in picks):
        return None
    gold = [LETTERS.index(r["gold"]) for r, _ in picks]
    pred = [None if p["predicted"] is None else LETTERS.index(p["predicted"]) for _, p in picks]
    return selection_bias(gold, pred, max(len(p["probabilities"]) for _, p in picks))


def compare_runs(base: str, new: str, out: str | None = None) -> dict:
    """Accuracies, differences and McNemar p-values on the questions both runs scored."""
    mb, pb = _read_run(base)
    mn, pn = _read_run(new)
    common = [i for i in pb if i in pn]
    if not common:
        raise MedtuneError(f"the two runs share no question ids ({base} vs {new})", field="--compare")
    rows = []
    for result in mb["results"]:
        if result not in mn["results"]:
            continue
        a = [correctness(pb[i], result) for i in common]
        b = [correctness(pn[i], result) for i in common]
        n = len(common)
        ka, kb = sum(map(bool, a)), sum(map(bool, b))
        rows.append({"result": result, "n": n,
                     "base": {"accuracy": ka / n, "ci95": list(wilson_ci(ka, n)), "bias": bias(pb, common, result)},
                     "new": {"accuracy": kb / n, "ci95": list(wilson_ci(kb, n)), "bias": bias(pn, common, result)},
                     "difference": (kb - ka) / n, "mcnemar": mcnemar(a, b)})
    result = {"base": base, "new": new, "common_questions": len(common),
              "only_in_base": len(pb) - len(common), "only_in_new": len(pn) - len(common),
              "baselines": mn.get("baselines"), "rows": rows}
    if out:
        dest = RunFolder(out)
        dest.write_json(dest.compare, result)
    return result


def format_compare(result: dict) -> str:
    """The side-by-side table."""
    lines = [f"base: {result['base']}", f"new:  {result['new']}",
             f"paired on {result['common_questions']} common questions"
             + (f" ({result['only_in_base']} only in base, {result['only_in_new']} only in new)"
                if result["only_in_base"] or result["only_in_new"] else ""),
             f"{'scorer':<12}{'base':>7}  {'95% CI':<16}{'new':>7}  {'95% CI':<16}{'diff':>7}"
             f"{'base only':>10}{'new only':>9}{'McNemar p':>11}"]
    for r in result["rows"]:
        b, n, m = r["base"], r["new"], r["mcnemar"]
        lines.append(f"{r['result']:<12}{b['accuracy']:>7.3f}  [{b['ci95'][0]:.3f}, {b['ci95'][1]:.3f}]  "
                     f"{n['accuracy']:>7.3f}  [{n['ci95'][0]:.3f}, {n['ci95'][1]:.3f}]  {r['difference']:>+7.3f}"
                     f"{m['a_only']:>10}{m['b_only']:>9}{m['p_value']:>11.4f}")
    for r in result["rows"]:
        b, n = r["base"].get("bias"), r["new"].get("bias")
        if b and n:
            lines.append(f"selection bias ({r['result']}): RStd {b['rstd']:.1%} → {n['rstd']:.1%} · "
                         f"KL(predicted‖gold) {b['kl_pred_gold']:.3f} → {n['kl_pred_gold']:.3f}")
    bl = result.get("baselines")
    if bl:
        mf = bl["most_frequent_letter"]
        lines.append(f"baselines on these questions: chance {bl['chance']:.3f} · always {mf['letter']!r} "
                     f"{mf['accuracy']:.3f}")
    return "\n".join(lines)
