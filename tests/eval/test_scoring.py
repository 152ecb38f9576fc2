"""Scoring gives the precision, recall and F1 worked out by hand."""

from __future__ import annotations

import pytest

from skuforge.eval.scoring import normalise_value, outcome, score

GOLD = [
    {"Brand": ["Crocs"], "Color": ["Nautical Navy"], "Size": ["4 M US"], "Material": []},
    {"Brand": ["Ellie Shoes"], "Color": ["Red Patent"], "Size": ["14 M US"], "Material": ["Leather"]},
    {"Brand": ["Finn Comfort"], "Color": [], "Size": [], "Material": []},
]
PREDICTED = [
    # Brand right, Color right but cased differently, Size missing, Material invented
    {"Brand": "Crocs", "Color": "nautical navy", "Size": None, "Material": "Rubber"},
    # Brand right, Color wrong, Size right, Material right with punctuation
    {"Brand": "Ellie Shoes", "Color": "Red", "Size": "14 M US", "Material": "leather."},
    # Brand right, the rest correctly null ("n/a" counts as null)
    {"Brand": "Finn Comfort", "Color": None, "Size": "n/a"},
]


def test_micro_scores_match_the_hand_count() -> None:
    result = score(list(zip(GOLD, PREDICTED, strict=True)))
    # exact: VC = Brand x3 + Size 1 = 4; VW = Color x2 + Material(leather.) = 3; VN = Size 1; NV = Material 1
    exact = result["exact"].micro()
    assert (exact.vc, exact.vw, exact.vn, exact.nv, exact.nn) == (4, 3, 1, 1, 3)
    assert exact.precision == pytest.approx(4 / 8)
    assert exact.recall == pytest.approx(4 / 8)
    assert exact.f1 == pytest.approx(0.5)
    # normalised: Color 'nautical navy' and Material 'leather.' become right: VC 6, VW 1
    norm = result["normalised"].micro()
    assert (norm.vc, norm.vw, norm.vn, norm.nv, norm.nn) == (6, 1, 1, 1, 3)
    assert norm.precision == pytest.approx(6 / 8)
    assert norm.recall == pytest.approx(6 / 8)


def test_per_attribute_and_macro_scores_match_the_hand_count() -> None:
    norm = score(list(zip(GOLD, PREDICTED, strict=True)))["normalised"]
    brand, color = norm.per_attribute["Brand"], norm.per_attribute["Color"]
    assert brand.f1 == 1.0
    assert (color.vc, color.vw, color.nn) == (1, 1, 1)
    assert color.precision == 0.5 and color.recall == 0.5
    size, material = norm.per_attribute["Size"], norm.per_attribute["Material"]
    assert (size.precision, size.recall) == (1.0, 0.5)
    assert (material.precision, material.recall) == (0.5, 1.0)
    macro = norm.macro()
    assert macro["f1"] == pytest.approx((1.0 + 0.5 + 2 / 3 + 2 / 3) / 4)


def test_a_value_where_gold_says_n_a_is_a_false_positive_and_null_a_true_negative() -> None:
    assert outcome([], "Steel", normalised=True) == "nv"
    assert outcome([], None, normalised=True) == "nn"
    assert outcome([], "N/A", normalised=False) == "nn"


def test_any_accepted_gold_value_counts_as_right() -> None:
    assert (
        outcome(["Printing, Copying, Laminating", "Paper Products"], "paper products", normalised=True)
        == "vc"
    )
    assert (
        outcome(["Printing, Copying, Laminating", "Paper Products"], "paper products", normalised=False)
        == "vw"
    )


def test_normalised_values_convert_units_and_drop_case_and_punctuation() -> None:
    assert normalise_value("55 mm") == normalise_value("5.5cm")
    assert normalise_value("1 in") == normalise_value("2.54 cm")
    assert normalise_value("Women's") == normalise_value("womens")
    assert normalise_value("9/16 in") != normalise_value("1-9/16 in")
