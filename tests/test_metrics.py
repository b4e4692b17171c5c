"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from medtune.eval.metrics import baselines, expected_calibration_error, macro_f1, mcnemar, summarize, wilson_ci


def test_wilson_interval_known_value():
    lo, hi = wilson_ci(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    assert wilson_ci(0, 10)[0] == 0.0 and wilson_ci(10, 10)[1] == 1.0


def test_macro_f1_by_hand():
    gold = [0, 0, 1, 1, 2]
    pred = [0, 1, 1, 1, 0]
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp0 -> 0
    assert macro_f1(gold, pred) == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_ece_by_hand():
    ece, bins = expected_calibration_error([0.95, 0.95, 0.55, 0.55], [True, False, True, True])
    # bin 0.9-1.0: acc 0.5 conf 0.95 -> 0.45 * 2/4; bin 0.5-0.6: acc 1 conf 0.55 -> 0.45 * 2/4
    assert ece == pytest.approx(0.45)
    assert bins[9]["n"] == 2 and bins[5]["n"] == 2


def test_mcnemar_exact():
    a = [True] * 10 + [False] * 2 + [True] * 5
    b = [False] * 10 + [True] * 2 + [True] * 5
    r = mcnemar(a, b)
    assert (r["a_only"], r["b_only"]) == (10, 2)
    expected = 2 * sum(math.comb(12, i) for i in range(3)) / 2 ** 12
    assert r["p_value"] == pytest.approx(expected) and r["p_value"] == pytest.approx(0.0386, abs=1e-4)
    assert mcnemar([True], [True])["p_value"] == 1.0


def test_baselines_most_frequent_letter():
    b = baselines([0, 0, 0, 1, 2], [4, 4, 4, 4, 2])
    assert b["most_frequent_letter"] == {"letter": "A", "accuracy": 0.6, "ci95": list(wilson_ci(3, 5))}
    assert b["chance"] == pytest.approx((0.25 * 4 + 0.5) / 5)


def test_summarize_confusion_and_subjects():
    probs = [[0.7, 0.3], [0.6, 0.4], [0.2, 0.8]]
    s = summarize([0, 1, 1], probs, ["x", "y", None])
    assert s["accuracy"] == pytest.approx(2 / 3)
    assert s["confusion"]["rows_gold_cols_pred"] == [[1, 0], [1, 1]]
    assert s["per_subject"]["y"]["accuracy"] == 0.0 and s["per_subject"]["(none)"]["n"] == 1
    assert s["predicted_letters"] == {"A": pytest.approx(2 / 3), "B": pytest.approx(1 / 3)}
