"""Every seeded mistake in the test catalog is caught, and every clean row passes every check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skuforge.checks.base import CheckItem, CheckSpec, Finding, build, verdict

SEEDED = Path(__file__).parents[1] / "fixtures" / "checks" / "seeded.jsonl"
CASES = [json.loads(line) for line in SEEDED.read_text(encoding="utf-8").splitlines() if line.strip()]
DEFAULT = [
    {"check": "language"},
    {"check": "grounding"},
    {"check": "refusal"},
    {"check": "length", "field": "title", "max_chars": 200},
]


def _item(case: dict[str, Any]) -> CheckItem:
    return CheckItem(
        row=case["row"],
        output=case["output"],
        locale=case["locale"],
        schema=case.get("schema"),
        row_id=case["row_id"],
    )


def run_case(case: dict[str, Any]) -> list[Finding]:
    specs = DEFAULT + (case.get("checks") or []) + ([{"check": "schema"}] if case.get("schema") else [])
    item = _item(case)
    return [f for spec in specs for f in build(CheckSpec(**spec))(item) if not f.ok]


@pytest.fixture(scope="module")
def duplicate_findings() -> dict[str, list[Finding]]:
    """The duplicate check is stateful: run the whole catalog through one instance, in file order."""
    check = build(CheckSpec(check="duplicate"))
    return {case["id"]: [f for f in check(_item(case)) if not f.ok] for case in CASES}


def test_seeded_catalog_has_enough_clean_rows_and_mistakes() -> None:
    clean = [c for c in CASES if not c["expect"]]
    assert len(clean) >= 30
    assert len(CASES) - len(clean) >= 25


@pytest.mark.parametrize("case", [c for c in CASES if not c["expect"]], ids=lambda c: c["id"])
def test_clean_row_passes_every_check(
    case: dict[str, Any], duplicate_findings: dict[str, list[Finding]]
) -> None:
    findings = run_case(case) + duplicate_findings[case["id"]]
    assert [f.reason for f in findings] == []


@pytest.mark.parametrize("case", [c for c in CASES if c["expect"]], ids=lambda c: c["id"])
def test_seeded_mistake_is_caught_by_the_right_check(
    case: dict[str, Any], duplicate_findings: dict[str, list[Finding]]
) -> None:
    findings = run_case(case) + duplicate_findings[case["id"]]
    for want in case["expect"]:
        hits = [f for f in findings if f.check == want["check"] and want["contains"] in f.reason]
        assert hits, (
            f"no {want['check']} finding mentioning {want['contains']!r}; got {[f.reason for f in findings]}"
        )
    assert {f.check for f in findings} == {w["check"] for w in case["expect"]}
    assert verdict(findings) == "flagged"
