"""`skuforge safety scan | packs` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from skuforge.cli import safety

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "safety"


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("noop")(lambda: None)
    safety.register(app)
    return app


def test_scan_of_a_clean_text_exits_zero() -> None:
    result = CliRunner().invoke(_app(), ["safety", "scan", "Ceramic mug, 350 ml"])
    assert result.exit_code == 0 and "No violations" in result.output


def test_scan_json_lists_matches_and_exits_with_the_blocked_code() -> None:
    result = CliRunner().invoke(_app(), ["safety", "scan", "極品 tea, FREE SHIPPING", "--json"])
    assert result.exit_code == safety.EXIT_BLOCKED
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["term"], r["start"], r["end"]) for r in rows] == [("极品", 0, 2), ("free shipping", 8, 21)]


def test_scan_a_file_with_competitors_flags_by_line() -> None:
    args = [
        "safety",
        "scan",
        str(FIXTURES / "competitors.txt"),
        "--packs",
        "en",
        "--competitors",
        str(FIXTURES / "competitors.txt"),
        "--json",
    ]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == safety.EXIT_FLAGGED
    assert [json.loads(x)["where"] for x in result.output.splitlines()] == [
        "competitors.txt:2",
        "competitors.txt:3",
    ]


def test_packs_lists_versions_and_term_counts() -> None:
    result = CliRunner().invoke(_app(), ["safety", "packs", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["zh"]["terms"] > 1000 and rows["pii"]["detectors"] == [
        "credit_card",
        "email",
        "national_id",
        "phone",
        "url",
    ]
