"""What `medtune eval` adds beyond one accuracy: option-order robustness (--permute), the PriDe letter-bias
correction (--debias), calibration and abstention (--calibrate-on, or a training run's selection split),
as metrics.json sections, predictions.jsonl fields and terminal lines."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from medtune.data.schema import LETTERS, MCQItem
from medtune.errors import MedtuneError
from medtune.eval.output import ScorerOutput

ScoreFn = Callable[[str, list[MCQItem]], ScorerOutput]


def _subset(out: ScorerOutput, idx: Sequence[int]) -> ScorerOutput:
    return ScorerOutput({n: [s[i] for i in idx] for n, s in out.scores.items()},
                        predicted={n: [p[i] for i in idx] for n, p in (out.predicted or {}).items()} or None)


def _probabilistic(out: ScorerOutput) -> list[str]:
    """The result names whose answer is the highest score (the generative scorer reads its answer instead)."""
    return [n for n in out.scores if not (out.predicted and n in out.predicted)]


def analyse(cfg: Any, items: list[MCQItem], outputs: dict[str, ScorerOutput], score: ScoreFn, primary: str,
            calibration: list[MCQItem] | None = None) -> tuple[dict, list[dict]]:
    """The robustness sections of metrics.json and the per-question fields for predictions.jsonl."""
    from medtune.eval.permute import orders_for, rotation, score_orders

    t0 = time.perf_counter()
    gold = [it.answer_index for it in items]
    sections: dict = {}
    rows: list[dict] = [{} for _ in items]
    ordered = {}
    if cfg.permute:
        orders = [orders_for(it, cfg.permute, cfg.seed) for it in items]
        sections["permutation"] = {"spec": cfg.permute, "seed": cfg.seed}
        for scorer, out in outputs.items():
            ordered[scorer] = score_orders(lambda its, s=scorer: score(s, its), items, orders, out)
            for name in out.scores:
                _permutation(sections["permutation"], rows, gold, ordered[scorer], name, name == primary)
    if cfg.debias:
        from medtune.eval.bias import prior_sample

        sample = prior_sample([it.id for it in items], cfg.debias_fraction, cfg.seed)
        sections["debias"] = {"method": cfg.debias, "fraction": cfg.debias_fraction, "seed": cfg.seed,
                              "prior_ids": [items[i].id for i in sample], "results": {}, "prior": {}}
        for scorer, out in outputs.items():
            names = _probabilistic(out)
            if not names:
                raise MedtuneError(f"--debias {cfg.debias} divides a prior out of option probabilities; the "
                                   f"{scorer} scorer reads its answer from text", field="--debias")
            cyc = ordered.get(scorer) if cfg.permute == "cyclic" else None
            if cyc is None:
                sub = [items[i] for i in sample]
                cyc = score_orders(lambda its, s=scorer: score(s, its), sub,
                                   [[rotation(len(it.options), r) for r in range(len(it.options))] for it in sub],
                                   _subset(out, sample))
                shown = {n: cyc.shown[n] for n in names}
            else:
                shown = {n: [cyc.shown[n][i] for i in sample] for n in names}
            for name in names:
                _debias(sections["debias"], rows, gold, out.scores[name], shown[name], sample, name,
                        name == primary)
    sections["confidence"] = _abstention(cfg, items, outputs, score, primary, calibration, rows)
    sections["robustness_s"] = time.perf_counter() - t0
    return sections, rows


def _permutation(section: dict, rows: list[dict], gold: list[int], ordered: Any, name: str, primary: bool) -> None:
    from medtune.eval.permute import order_metrics

    m = order_metrics(gold, ordered, name)
    averaged = m["averaged"].pop("predicted")
    section[name] = m
    if primary:
        for row, preds, avg in zip(rows, ordered.predicted[name], averaged):
            row["orders"] = [None if p is None else LETTERS[p] for p in preds]
            row["averaged"] = None if avg is None else LETTERS[avg]


def _debias(section: dict, rows: list[dict], gold: list[int], scores: list[list[float]], shown: list,
            sample: list[int], name: str, primary: bool) -> None:
    """The prior from the sample, divided out of every other question; raw vs debiased on those."""
    from medtune.eval.bias import debias, estimate_prior, selection_bias
    from medtune.eval.metrics import mcnemar, wilson_ci
    from medtune.eval.scoring import softmax

    prior = estimate_prior([[softmax(s) for s in rotated] for rotated in shown])
    section["prior"][name] = {str(n): p for n, p in prior.items()}
    held = set(sample)
    rest = [q for q in range(len(gold)) if q not in held]
    raw_pred, new_pred, kept = [], [], 0
    for q in rest:
        p = softmax(scores[q])
        d = debias(p, prior[len(p)]) if len(p) in prior else p
        kept += len(p) not in prior
        raw_pred.append(max(range(len(p)), key=p.__getitem__))
        new_pred.append(max(range(len(d)), key=d.__getitem__))
        if primary:
            rows[q]["debiased"] = {"predicted": LETTERS[new_pred[-1]], "probabilities": [round(x, 6) for x in d]}
    if primary:
        for q in sample:
            rows[q]["prior_sample"] = True
    g = [gold[q] for q in rest]
    width = max(len(s) for s in scores)
    out = {"n": len(rest), "not_debiased": kept}
    for key, pred in (("raw", raw_pred), ("debiased", new_pred)):
        k = sum(p == y for p, y in zip(pred, g))
        out[key] = {"accuracy": k / len(g) if g else 0.0, "ci95": list(wilson_ci(k, len(g))),
                    "bias": selection_bias(g, pred, width),
                    "predicted_letters": {LETTERS[i]: sum(p == i for p in pred) / max(1, len(pred))
                                          for i in range(width)}}
    out["mcnemar"] = mcnemar([p == y for p, y in zip(raw_pred, g)], [p == y for p, y in zip(new_pred, g)])
    section["results"][name] = out


def _abstention(cfg: Any, items: list[MCQItem], outputs: dict[str, ScorerOutput], score: ScoreFn, primary: str,
                calibration: list[MCQItem] | None, rows: list[dict]) -> dict | None:
    """Risk-coverage of the primary result; with calibration questions, the temperature and threshold fitted
    on them and applied here (ECE and Brier before/after on the reported questions)."""
    from medtune.eval import confidence as C

    scorer = next(s for s, o in outputs.items() if primary in o.scores)
    if primary not in _probabilistic(outputs[scorer]):
        return None
    scores = outputs[scorer].scores[primary]
    gold = [it.answer_index for it in items]
    out: dict = {"result": primary}
    t = 1.0
    if calibration:
        ids = {it.id for it in items}
        both = [it.id for it in calibration if it.id in ids]
        if both:
            raise MedtuneError(f"{len(both)} calibration questions are also reported (first: {both[0]}); calibrate "
                               "on questions the report never sees", field="--calibrate-on")
        cal = score(scorer, calibration)
        src = {"source": cfg.calibrate_on or "training run selection split",
               "ids": [it.id for it in calibration]}
        fitted = C.calibrate(cal.scores[primary], [it.answer_index for it in calibration], cfg.target_accuracy, src)
        t = fitted["temperature"]
        out.update(fitted, reported_set=C.calibration_figures(scores, gold, t))
    probs = [C.scaled(s, t) for s in scores]
    conf = [max(p) for p in probs]
    correct = [max(range(len(p)), key=p.__getitem__) == g for p, g in zip(probs, gold)]
    out["risk_coverage"] = C.risk_coverage(conf, correct)
    th = (out.get("abstain") or {}).get("threshold")
    if th is not None:
        kept = [c for f, c in zip(conf, correct) if f >= th]
        out["abstain"]["on_reported"] = {"coverage": len(kept) / len(conf),
                                         "accuracy": sum(kept) / len(kept) if kept else None}
    for row, c in zip(rows, conf):
        row["confidence"] = round(c, 6)
    return out


def lines(metrics: dict) -> list[str]:
    """Terminal lines for the robustness sections of a metrics dict (none when it has none)."""
    out = []
    primary = metrics["primary"]
    b = metrics["results"][primary].get("bias")
    if b:
        out.append(f"selection bias ({primary}): RStd {b['rstd']:.1%} · KL(predicted‖gold letters) "
                   f"{b['kl_pred_gold']:.3f} · recall " + " ".join(f"{k} {v:.0%}" for k, v in b["recall"].items()))
    p = (metrics.get("permutation") or {}).get(primary)
    if p:
        per = " ".join(f"{r['accuracy']:.3f}" for r in p["per_order"])
        out.append(f"option orders ({metrics['permutation']['spec']}, {p['orders']}): accuracy per order {per} · "
                   f"spread {p['spread']:.3f}")
        a = p["averaged"]
        out.append(f"  permutation-averaged {a['accuracy']:.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}] · correct "
                   f"under every order {p['correct_every_order']:.1%} · same answer in every order "
                   f"{p['consistency']:.1%} · RStd over all orders {p['bias_pooled']['rstd']:.1%}")
    d = metrics.get("debias")
    r = (d or {}).get("results", {}).get(primary)
    if r:
        by_n = d["prior"][primary]
        prior = " · ".join((f"{n} options: " if len(by_n) > 1 else "") + " ".join(
            f"{LETTERS[i]} {v:.0%}" for i, v in enumerate(ps)) for n, ps in by_n.items())
        out.append(f"debias {d['method']}: prior from {len(d['prior_ids'])} questions ({d['fraction']:.0%}, seed "
                   f"{d['seed']}, excluded below): {prior}")
        m = r["mcnemar"]
        raw, new = r["raw"]["accuracy"], r["debiased"]["accuracy"]
        out.append(f"  on the other {r['n']}: raw {raw:.3f} → debiased {new:.3f}"
                   f" (McNemar p={m['p_value']:.3g}, {m['a_only']} raw-only / {m['b_only']} debiased-only) · RStd "
                   f"{r['raw']['bias']['rstd']:.1%} → {r['debiased']['bias']['rstd']:.1%} · letters "
                   + " ".join(f"{k} {v:.0%}" for k, v in r["debiased"]["predicted_letters"].items()))
    ab = metrics.get("confidence")
    if ab:
        rc = ab["risk_coverage"]
        acc = " · ".join(f"{k} {v:.3f}" for k, v in rc["accuracy_at"].items())
        out.append(f"abstention: AURC {rc['aurc']:.3f} · accuracy at coverage {acc}")
        if "temperature" in ab:
            rep = ab["reported_set"]
            out.append(f"  temperature {ab['temperature']:.3f} fitted on {ab['fitted_on']['n']} questions "
                       f"({ab['fitted_on']['source']}): ECE {rep['before']['ece']:.3f} → {rep['after']['ece']:.3f}, "
                       f"Brier {rep['before']['brier']:.3f} → {rep['after']['brier']:.3f} on these questions")
            th = ab["abstain"]
            if th["threshold"] is None:
                out.append(f"  no confidence reaches {th['target_accuracy']:.0%} accuracy on the calibration "
                           "questions: no default abstention threshold")
            else:
                rep = th["on_reported"]
                out.append(f"  abstain below {th['threshold']:.3f} (reaches {th['target_accuracy']:.0%} on the "
                           f"calibration questions): here answers {rep['coverage']:.1%}"
                           + (f" at accuracy {rep['accuracy']:.3f}" if rep["accuracy"] is not None else ""))
    return out
