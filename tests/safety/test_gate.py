"""Acceptance: the gate catches every seeded violation and flags nothing in real clean titles."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from skuforge.safety import load_packs
from skuforge.safety.normalize import fold_term

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "safety"


@pytest.fixture(scope="module")
def gate():  # type: ignore[no-untyped-def]
    return load_packs(["zh", "en", "pii"], competitors=FIXTURES / "competitors.txt")


def _seeded() -> list[dict[str, str]]:
    with open(FIXTURES / "seeded.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_seeded_catalog_covers_both_languages_and_every_kind_of_violation() -> None:
    rows = _seeded()
    assert len(rows) >= 40 and {r["lang"] for r in rows} == {"en", "zh"}
    expected = {e for r in rows for e in r["expect"].split(";")}
    assert {"phone", "email", "url", "national_id", "credit_card", "acme"} <= expected


@pytest.mark.parametrize("row", _seeded(), ids=lambda r: f"row{r['id']}")
def test_gate_catches_every_seeded_violation(gate, row: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    found = {fold_term(m.term) for m in gate.scan(row["text"])}
    missing = [e for e in row["expect"].split(";") if fold_term(e) not in found]
    assert not missing, f"row {row['id']} {row['text']!r}: missed {missing}, found {sorted(found)}"


def test_clean_real_titles_raise_no_flags(gate) -> None:  # type: ignore[no-untyped-def]
    titles = (FIXTURES / "clean_titles.txt").read_text(encoding="utf-8").splitlines()
    assert len(titles) >= 200
    flagged = [(t, [(m.text, m.term, m.category) for m in gate.scan(t)]) for t in titles]
    assert [f for f in flagged if f[1]] == []
