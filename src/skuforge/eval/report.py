"""The evaluation report: one JSON file for machines and one self-contained HTML page for people.

The HTML has no external assets (inline CSS, no scripts), so it can be mailed or attached to a ticket.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import orjson

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d232a;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border-bottom:1px solid #dde2e7;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f5f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
.big{display:inline-block;margin:.3rem 1.5rem .3rem 0}.big b{display:block;font-size:1.6rem}
.muted{color:#66707a}.bad{color:#b3261e}
"""


def write_report(report: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write `out` (HTML, or JSON if it ends with .json) and its sibling; return (html_path, json_path)."""
    out = Path(out)
    html_path = out if out.suffix.lower() in (".html", ".htm") else out.with_suffix(".html")
    json_path = html_path.with_suffix(".json")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    html_path.write_text(render_html(report), encoding="utf-8")
    return html_path, json_path


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _headline(report: dict[str, Any]) -> str:
    parts = []
    for mode in ("normalised", "exact"):
        micro = report["scores"][mode]["micro"]
        macro = report["scores"][mode]["macro"]
        parts.append(
            f'<span class="big">{mode} micro F1<b>{_pct(micro["f1"])}</b></span>'
            f'<span class="big">P / R<b>{_pct(micro["precision"])} / {_pct(micro["recall"])}</b></span>'
            f'<span class="big">macro F1<b>{_pct(macro["f1"])}</b></span>'
        )
    return "<p>" + "</p><p>".join(parts) + "</p>"


def _attribute_table(scores: dict[str, Any]) -> str:
    head = (
        "<tr><th>attribute</th>"
        + "".join(
            f"<th>{h}</th>" for h in ("P", "R", "F1", "correct", "wrong", "missed", "invented", "right n/a")
        )
        + "</tr>"
    )
    rows = []
    for name, c in scores["per_attribute"].items():
        cells = [
            _pct(c["precision"]),
            _pct(c["recall"]),
            _pct(c["f1"]),
            c["vc"],
            c["vw"],
            c["vn"],
            c["nv"],
            c["nn"],
        ]
        rows.append(f"<tr><td>{html.escape(name)}</td>" + "".join(f'<td class="n">{v}</td>' for v in cells))
    return f"<table>{head}{''.join(rows)}</table>"


def _mistakes(report: dict[str, Any], limit: int = 50) -> str:
    rows = []
    for m in report.get("mistakes", [])[:limit]:
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(m.get(k, '')))}</td>"
                for k in ("id", "attribute", "gold", "predicted", "kind")
            )
            + "</tr>"
        )
    if not rows:
        return "<p class='muted'>No mistakes.</p>"
    head = "<tr><th>item</th><th>attribute</th><th>gold</th><th>predicted</th><th>kind</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def render_html(report: dict[str, Any]) -> str:
    meta = report.get("meta", {})
    facts = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in meta.items()
    )
    errors = report.get("errors", [])
    error_html = (
        f"<p class='bad'>{len(errors)} items failed (no answer or unparseable); "
        "they count as predicting nothing.</p>"
        if errors
        else ""
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>skuforge attribute evaluation</title><style>{_CSS}</style></head><body>"
        "<h1>Attribute completion: evaluation</h1>"
        f"{_headline(report)}{error_html}<table>{facts}</table>"
        "<h2>Per attribute (normalised match)</h2>"
        f"{_attribute_table(report['scores']['normalised'])}"
        "<h2>Per attribute (exact match)</h2>"
        f"{_attribute_table(report['scores']['exact'])}"
        "<h2>Mistakes (normalised match, first 50)</h2>"
        f"{_mistakes(report)}"
        "<p class='muted'>P = correct / (correct + wrong + invented); "
        "R = correct / (correct + wrong + missed). "
        "'invented' is a value where the gold says the attribute is absent (n/a).</p>"
        "</body></html>"
    )
