"""Option-order robustness, PriDe letter-bias correction, temperature scaling and abstention: the maths on
planted toy scorers (exact), the identity of the unrotated pass with a plain eval on a tiny model."""

from __future__ import annotations

import json
import math
import random
from types import SimpleNamespace

import pytest

from medtune.data.schema import MCQItem
from medtune.eval import confidence as C
from medtune.eval.bias import debias, estimate_prior, prior_sample, selection_bias
from medtune.eval.output import ScorerOutput
from medtune.eval.permute import map_back, orders_for, parse_permute, reorder, score_orders
from medtune.errors import MedtuneError


def _item(i: int, n: int) -> MCQItem:
    return MCQItem(id=f"q{i}", question=f"question {i}", options=tuple(f"q{i} option {j}" for j in range(n)),
                   answer_index=i % n)


@pytest.mark.parametrize("n", range(2, 11))
def test_rotations_map_back_to_the_original_options(n):
    item = _item(7, n)
    orders = orders_for(item, "cyclic", seed=0)
    assert len(orders) == n and orders[0] == tuple(range(n)) and len(set(orders)) == n
    for order in orders:
        shown = reorder(item, order)
        assert shown.options[shown.answer_index] == item.answer_text  # the gold follows its option
        # a score per shown position, mapped back, lands on the option that was shown there
        per_position = [float(item.options.index(text)) for text in shown.options]
        assert map_back(per_position, order) == [float(j) for j in range(n)]
    random_orders = orders_for(item, 5, seed=3)
    assert random_orders[0] == tuple(range(n)) and len(set(random_orders)) == min(5, math.factorial(n))
    assert random_orders == orders_for(item, 5, seed=3) != orders_for(item, 5, seed=4) or n == 2


def test_permute_spec_errors():
    assert parse_permute("cyclic") == "cyclic" and parse_permute("6") == 6
    with pytest.raises(MedtuneError, match="expected cyclic or a number of orders, got 'rot'"):
        parse_permute("rot")
    with pytest.raises(MedtuneError, match="at least 2"):
        parse_permute("1")


BIAS = [0.55, 0.25, 0.15, 0.05]  # the planted preference for shown positions A..D


def _content(item: MCQItem) -> list[float]:
    """The planted probability of each option by its content: the gold one twice as likely."""
    w = [2.0 if j == item.answer_index else 1.0 for j in range(len(item.options))]
    return [x / sum(w) for x in w]


def toy_scorer(items: list[MCQItem]) -> ScorerOutput:
    """log P(content) + log P(letter): a scorer whose letter bias is exactly BIAS."""
    scores = []
    for it in items:
        original = TOY[it.id]
        content = _content(original)
        scores.append([math.log(content[original.options.index(t)]) + math.log(BIAS[pos])
                       for pos, t in enumerate(it.options)])
    return ScorerOutput({"letter": scores})


TOY: dict[str, MCQItem] = {}


def test_pride_removes_a_planted_letter_bias_exactly():
    items = [_item(i, 4) for i in range(40)]
    TOY.update({it.id: it for it in items})
    plain = toy_scorer(items)
    cyc = score_orders(toy_scorer, items, [orders_for(it, "cyclic", 0) for it in items], plain)
    from medtune.eval.scoring import softmax

    prior = estimate_prior([[softmax(s) for s in cyc.shown["letter"][q]] for q in range(3)])
    assert prior[4] == pytest.approx(BIAS, abs=1e-12)
    for it, s in zip(items, plain.scores["letter"]):
        assert debias(softmax(s), prior[4]) == pytest.approx(_content(it), abs=1e-12)
    # through evaluate's analysis: raw answers follow the letter, debiased ones the content
    from medtune.eval.robustness import analyse

    cfg = SimpleNamespace(permute="cyclic", debias="pride", debias_fraction=0.1, seed=0, calibrate_on=None,
                          target_accuracy=0.8)
    sections, rows = analyse(cfg, items, {"letter": plain}, lambda _s, its: toy_scorer(its), "letter")
    r = sections["debias"]["results"]["letter"]
    assert r["n"] == 36 and len(sections["debias"]["prior_ids"]) == 4
    assert r["raw"]["accuracy"] == pytest.approx(9 / 36) and r["debiased"]["accuracy"] == 1.0
    assert r["raw"]["bias"]["rstd"] == pytest.approx(math.sqrt(3) / 4) and r["debiased"]["bias"]["rstd"] == 0.0
    assert r["mcnemar"]["a_only"] == 0 and r["mcnemar"]["b_only"] == 27
    p = sections["permutation"]["letter"]
    assert [o["accuracy"] for o in p["per_order"]] == [0.25] * 4  # always the shown A, right once in 4
    assert p["correct_every_order"] == 0.0 and p["consistency"] == 0.0 and p["averaged"]["accuracy"] == 1.0
    assert sum(1 for row in rows if row.get("prior_sample")) == 4


def test_prior_sample_is_seeded_by_ids():
    ids = [f"id{i}" for i in range(200)]
    s = prior_sample(ids, 0.05, seed=0)
    assert len(s) == 10 and s == prior_sample(ids, 0.05, 0) != prior_sample(ids, 0.05, 1)
    shuffled = ids[::-1]
    assert sorted(shuffled[i] for i in prior_sample(shuffled, 0.05, 0)) == sorted(ids[i] for i in s)


def test_selection_bias_by_hand():
    b = selection_bias([0, 0, 1, 1], [0, 0, 0, 1], 2)
    assert b["recall"] == {"A": 1.0, "B": 0.5} and b["rstd"] == pytest.approx(0.25)
    # predicted A 3/4 vs gold A 2/4, smoothed counts (3+1)/6, (1+1)/6 vs (2+1)/6, (2+1)/6
    assert b["kl_pred_gold"] == pytest.approx(4 / 6 * math.log(4 / 3) + 2 / 6 * math.log(2 / 3))


def test_temperature_scaling_lowers_ece_on_an_overconfident_set():
    rng = random.Random(0)
    scores, gold = [], []
    for _ in range(2000):  # the model's true chance of being right is its softmax at T=4; it reports T=1
        s = [rng.gauss(0, 4) for _ in range(4)]
        p = C.scaled(s, 4.0)
        gold.append(rng.choices(range(4), weights=p)[0])
        scores.append(s)
    t = C.fit_temperature(scores, gold)
    assert 3.4 < t < 4.6
    fig = C.calibration_figures(scores, gold, t)
    assert fig["after"]["ece"] < 0.04 < 0.15 < fig["before"]["ece"]
    assert fig["after"]["brier"] < fig["before"]["brier"] and fig["after"]["nll"] < fig["before"]["nll"]


def test_risk_coverage_and_threshold_by_hand():
    conf = [0.9, 0.8, 0.7, 0.6]
    correct = [True, True, False, True]
    rc = C.risk_coverage(conf, correct)
    assert rc["aurc"] == pytest.approx((0 + 0 + 1 / 3 + 1 / 4) / 4)
    assert rc["accuracy_at"] == {"50%": 1.0, "80%": 0.75, "90%": 0.75}  # at least 80%: all 4
    th = C.threshold_for(conf, correct, 0.75)
    assert (th["threshold"], th["coverage"], th["accuracy"]) == (0.6, 1.0, 0.75)
    assert C.threshold_for(conf, correct, 0.8)["threshold"] == 0.8
    assert C.threshold_for([0.5], [False], 0.5)["threshold"] is None
    v = C.verdict([0.5, 0.3, 0.2], None, 0.6)
    assert v["abstain"] and v["abstain_reason"] == "confidence 50.0% is below the threshold 60.0%"
    assert not C.verdict([0.5, 0.3, 0.2], 0.5, 0.6)["abstain"]  # sharper at T=0.5: 0.74


def test_unrotated_pass_equals_a_plain_eval(tmp_path, tiny_model_dir, sample_jsonl):
    from medtune.eval.run import EvalConfig, evaluate_items, load_items

    def run(out: str, **kw) -> tuple[dict, list[dict]]:
        cfg = EvalConfig(data=[str(sample_jsonl)], model=str(tiny_model_dir), out=str(tmp_path / out),
                         progress=False, batch_size=4, **kw)
        items, report = load_items(cfg)
        m = evaluate_items(cfg, items, report)
        return m, [json.loads(x) for x in (tmp_path / out / "predictions.jsonl").read_text().splitlines()]

    plain, plain_rows = run("plain")
    other = tmp_path / "calibration.jsonl"  # the same questions under new ids: never reported
    other.write_text("".join(json.dumps({**json.loads(x), "id": "cal-" + json.loads(x)["id"]}) + "\n"
                             for x in sample_jsonl.read_text().splitlines()))
    perm, perm_rows = run("perm", permute="cyclic", debias="pride", calibrate_on=str(other))
    assert [r["probabilities"] for r in perm_rows] == [r["probabilities"] for r in plain_rows]
    assert [r["orders"][0] for r in perm_rows] == [r["predicted"] for r in plain_rows]
    p = perm["permutation"]["letter"]
    assert p["orders"] == 5 and p["per_order"][0]["accuracy"] == plain["results"]["letter"]["accuracy"]
    assert [o["n"] for o in p["per_order"]] == [40, 40, 40, 26, 13]  # 3-, 4- and 5-option questions
    assert perm["manifest"]["debias"]["prior_ids"] == perm["debias"]["prior_ids"] and \
        len(perm["debias"]["prior_ids"]) == 2 and perm["debias"]["results"]["letter"]["n"] == 38
    from medtune.eval.run import format_table

    text = format_table(perm)
    assert "option orders (cyclic, 5): accuracy per order " in text
    assert "debias pride: prior from 2 questions (5%, seed 0, excluded below): " in text
    assert f"temperature {perm['confidence']['temperature']:.3f} fitted on 40 questions ({other}): ECE " in text
    conf = perm["confidence"]
    assert conf["fitted_on"]["n"] == 40 and conf["temperature"] > 0 and len(conf["risk_coverage"]["curve"]) == 40
    assert conf["reported_set"]["after"]["nll"] <= conf["reported_set"]["before"]["nll"] + 1e-9  # same questions
    with pytest.raises(MedtuneError, match="40 calibration questions are also reported"):
        run("overlap", calibrate_on=str(sample_jsonl))
    # compare reports both runs' bias; the report draws orders, bias bars and risk-coverage
    from medtune.eval.compare import compare_runs, format_compare
    from medtune.eval.report import build_report

    c = compare_runs(str(tmp_path / "plain"), str(tmp_path / "perm"))
    assert c["rows"][0]["base"]["bias"] == c["rows"][0]["new"]["bias"] == plain["results"]["letter"]["bias"]
    b = plain["results"]["letter"]["bias"]
    assert f"selection bias (letter): RStd {b['rstd']:.1%} → {b['rstd']:.1%}" in format_compare(c)
    page = build_report(str(tmp_path / "perm")).read_text()
    for caption in ("Accuracy per option order", "Selection bias: recall per gold letter", "Risk-coverage"):
        assert f"<figcaption>{caption}</figcaption>" in page
    assert all((tmp_path / "perm" / "report" / f).is_file() for f in ("orders.png", "bias.png", "risk_coverage.png"))


def test_demo_prints_letters_and_rstd_before_and_after():
    from medtune.demo import bias_line

    row = {"base": {"bias": {"rstd": 0.3}}, "new": {"bias": {"rstd": 0.125}}}
    summary = {"compare": {"rows": [row]}, "letters": {"gold": {"A": 0.5, "B": 0.5}, "before": {"A": 0.9, "B": 0.1},
                                                         "after": {"A": 0.6, "B": 0.4}}}
    assert bias_line(summary) == ("Letters answered: before A 90% B 10% · after A 60% B 40%; selection bias (RStd) "
                                  "30.0% -> 12.5%.")
    assert bias_line({"compare": None}) is None
