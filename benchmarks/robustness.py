"""What option-order robustness and the PriDe correction cost, and what they show.

`cost`: the same questions scored plain, with `--permute cyclic` and with `--debias pride` (5%), by one
loaded model, in alternating rounds (plain, cyclic, pride, plain, cyclic, pride, ...) so that a drift in the
machine's speed hits all three; the ratios are per round (setting / that round's plain), then their median.

`summary`: raw vs PriDe-debiased vs permutation-averaged accuracy, RStd before/after and McNemar, read from
an eval folder written by `medtune eval --permute cyclic --debias pride`.

`pair`: the same figures for two such folders on the same questions (the base model and an adapter), and the
adapter against the base, question by question, for each of the three predictions (McNemar). With --run, the
training run whose held-out questions these are: its eval questions must be exactly the scored ones, and none
of its training or selection questions may be among them.

usage: python benchmarks/robustness.py cost OUT.json [--data medmcqa-dev] [--limit 200] [--rounds 2]
       python benchmarks/robustness.py summary EVAL_DIR OUT.json [--command "the eval's command"]
       python benchmarks/robustness.py pair BASE_DIR ADAPTER_DIR OUT.json [--run RUN_DIR] [--base-command ...]
                                       [--adapter-command ...] [--questions "how the questions were chosen"]
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
    return summarize(args.eval_dir, args.command)


def summarize(eval_dir: str, command: str) -> dict:
    """The robustness figures of one eval folder, with the command that wrote it."""
    m = json.loads((Path(eval_dir) / "metrics.json").read_text())
    primary = m["primary"]
    r = m["results"][primary]
    p = (m.get("permutation") or {}).get(primary) or {}
    d = (m.get("debias") or {}).get("results", {}).get(primary) or {}
    return {
        "what": "raw vs PriDe-debiased vs permutation-averaged accuracy", "command": command,
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


PREDICTIONS = {"raw": lambda r: r["predicted"], "permutation-averaged": lambda r: r.get("averaged"),
               "pride-debiased": lambda r: (r.get("debiased") or {}).get("predicted")}


def held_out(run_dir: str, ids: set[str]) -> dict:
    """Checks that `ids` are exactly a training run's eval questions, none trained on or used for selection."""
    from medtune.eval.compare import read_predictions

    run = Path(run_dir)
    man = json.loads((run / "manifest.json").read_text())
    run_eval = set(read_predictions(run / "baseline" / "predictions.jsonl"))
    selection = set(man["split"].get("selection_ids") or [])
    assert run_eval == ids, f"{run_dir}'s eval questions are not the scored ones ({len(run_eval ^ ids)} differ)"
    assert not selection & ids, f"{len(selection & ids)} selection questions among the scored ones"
    return {"run": run_dir, "split": man["split"], "scored_equals_run_eval_questions": True,
            "selection_questions_among_scored": 0}


def pair(args: argparse.Namespace) -> dict:
    """Base and adapter on the same questions: each one's figures and the adapter against the base."""
    from medtune.eval.compare import read_predictions

    pb, pa = (read_predictions(Path(d) / "predictions.jsonl") for d in (args.base_dir, args.adapter_dir))
    return {"what": "base model and adapter on the same held-out questions: raw vs PriDe-debiased vs "
                    "permutation-averaged accuracy, RStd, and the adapter against the base (McNemar: a = base, "
                    "b = adapter)",
            "questions": len(pb), "how_chosen": args.questions,
            "held_out": held_out(args.run, set(pb)) if args.run else None,
            "base": summarize(args.base_dir, args.base_command),
            "adapter": summarize(args.adapter_dir, args.adapter_command),
            "adapter_vs_base": versus(pb, pa)}


def versus(pb: dict, pa: dict) -> dict:
    """Per prediction kind: base and adapter accuracy on the questions both have it for, and McNemar."""
    from medtune.eval.metrics import mcnemar, wilson_ci

    assert set(pb) == set(pa), f"the two folders scored different questions ({len(set(pb) ^ set(pa))} differ)"
    rows = {}
    for name, pick in PREDICTIONS.items():
        ids = [i for i in pb if pick(pb[i]) is not None and pick(pa[i]) is not None]
        if not ids:
            rows[name] = None
            continue
        b = [pick(pb[i]) == pb[i]["gold"] for i in ids]
        a = [pick(pa[i]) == pa[i]["gold"] for i in ids]
        n = len(ids)
        rows[name] = {"n": n, "base": {"accuracy": sum(b) / n, "ci95": list(wilson_ci(sum(b), n))},
                      "adapter": {"accuracy": sum(a) / n, "ci95": list(wilson_ci(sum(a), n))},
                      "difference": (sum(a) - sum(b)) / n, "mcnemar": mcnemar(b, a)}
    return rows


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
    pa = sub.add_parser("pair")
    pa.add_argument("base_dir")
    pa.add_argument("adapter_dir")
    pa.add_argument("out")
    pa.add_argument("--run", help="the training run whose held-out questions were scored")
    for flag in ("--base-command", "--adapter-command", "--questions"):
        pa.add_argument(flag, default="")
    args = ap.parse_args()
    result = {"cost": cost, "summary": summary, "pair": pair}[args.cmd](args)
    result.update(commit=git_commit(), versions=package_versions(), cpu=cpu_model())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
