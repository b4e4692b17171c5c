"""What option-order robustness and the PriDe correction cost, and what they show.

`cost`: the same questions scored plain, with `--permute cyclic` and with `--debias pride` (5%), by one
loaded model, in alternating rounds (plain, cyclic, pride, plain, cyclic, pride, ...) so that a drift in the
machine's speed hits all three; the ratios are per round (setting / that round's plain), then their median.

`summary`: raw vs PriDe-debiased vs permutation-averaged accuracy, RStd before/after and McNemar, read from
an eval folder written by `medtune eval --permute cyclic --debias pride`.

usage: python benchmarks/robustness.py cost OUT.json [--data medmcqa-dev] [--limit 200] [--rounds 2]
       python benchmarks/robustness.py summary EVAL_DIR OUT.json [--command "the eval's command"]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from medtune.manifest import cpu_model, git_commit, package_versions

SETTINGS = {"plain": {}, "permute cyclic": {"permute": "cyclic"}, "debias pride 5%": {"debias": "pride"}}


def cost(args: argparse.Namespace) -> dict:
    """Alternating rounds of the three settings on one loaded model."""
    from medtune.eval.run import EvalConfig, evaluate_items, load_for_eval, load_items

    base = EvalConfig(data=[args.data], limit=args.limit, progress=False, batch_size=args.batch_size)
    items, report = load_items(base)
    loaded = load_for_eval(base)
    rows, preds = [], {}
    for r in range(args.rounds):
        for name, kw in SETTINGS.items():
            cfg = EvalConfig(data=[args.data], limit=args.limit, progress=False, batch_size=args.batch_size, **kw)
            t0 = time.perf_counter()
            m = evaluate_items(cfg, items, report, loaded=loaded)
            s = time.perf_counter() - t0
            rows.append({"round": r, "setting": name, "seconds": s})
            preds.setdefault(name, m["results"]["letter"]["accuracy"])
            print(f"round {r} {name:>16}: {s:7.1f} s", flush=True)
    ratios = {}
    for name in SETTINGS:
        per = [x["seconds"] / p["seconds"] for r in range(args.rounds)
               for x in rows if x["round"] == r and x["setting"] == name
               for p in rows if p["round"] == r and p["setting"] == "plain"]
        ratios[name] = {"per_round": per, "median": statistics.median(per)}
    return {"what": "cost of --permute cyclic and --debias pride vs a plain eval (same loaded model, alternating "
                    "rounds)", "data": args.data, "questions": len(items), "batch_size": args.batch_size,
            "rounds": rows, "ratio_to_plain": ratios, "targets": {"permute cyclic": 4.5, "debias pride 5%": 1.3},
            "plain_accuracy": preds.get("plain")}


def summary(args: argparse.Namespace) -> dict:
    """The robustness figures of one eval folder."""
    m = json.loads((Path(args.eval_dir) / "metrics.json").read_text())
    primary = m["primary"]
    r = m["results"][primary]
    p = (m.get("permutation") or {}).get(primary) or {}
    d = (m.get("debias") or {}).get("results", {}).get(primary) or {}
    return {
        "what": "raw vs PriDe-debiased vs permutation-averaged accuracy", "command": args.command,
        "model": m["manifest"]["model"]["name"], "adapter": m["manifest"].get("adapter"),
        "questions": m["n_questions"], "scorer": primary,
        "raw": {"accuracy": r["accuracy"], "ci95": r["ci95"], "rstd": r["bias"]["rstd"],
                "kl_pred_gold": r["bias"]["kl_pred_gold"], "predicted_letters": r["predicted_letters"]},
        "permutation": {k: p.get(k) for k in ("per_order", "spread", "averaged", "correct_every_order", "consistency",
                                               "bias_pooled")},
        "debias": {"prior": m["debias"]["prior"][primary], "prior_questions": len(m["debias"]["prior_ids"]),
                   **d} if d else None,
        "confidence": {k: v for k, v in (m.get("confidence") or {}).items() if k != "risk_coverage"},
        "aurc": ((m.get("confidence") or {}).get("risk_coverage") or {}).get("aurc"),
        "timing": m["timing"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cost")
    c.add_argument("out")
    c.add_argument("--data", default="medmcqa-dev")
    c.add_argument("--limit", type=int, default=200)
    c.add_argument("--rounds", type=int, default=2)
    c.add_argument("--batch-size", type=int, default=16)
    s = sub.add_parser("summary")
    s.add_argument("eval_dir")
    s.add_argument("out")
    s.add_argument("--command", default="")
    args = ap.parse_args()
    result = cost(args) if args.cmd == "cost" else summary(args)
    result.update(commit=git_commit(), versions=package_versions(), cpu=cpu_model())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
