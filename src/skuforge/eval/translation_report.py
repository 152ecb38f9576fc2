"""The translation evaluation report: JSON for machines, one self-contained HTML page for people.

Like the attribute report, the page has no external assets (inline CSS, no scripts).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import orjson

from skuforge.eval.report import _CSS

WORST = 30


def write_translation_report(report: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write `out` (HTML, or JSON if it ends with .json) and its sibling; return (html_path, json_path)."""
    out = Path(out)
    html_path = out if out.suffix.lower() in (".html", ".htm") else out.with_suffix(".html")
    json_path = html_path.with_suffix(".json")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    html_path.write_text(render_translation_html(report), encoding="utf-8")
    return html_path, json_path


def _e(value: Any) -> str:
    return html.escape(str(value if value is not None else ""))


def _headline(scores: dict[str, Any], meta: dict[str, Any]) -> str:
    figures = [
        ("chrF", f"{scores['chrf']:.1f}"),
        ("BLEU", f"{scores['bleu']:.1f}"),
        ("leftover source script", f"{scores['leftover']} / {scores['items']}"),
        ("of those unflagged", str(scores["leftover_unflagged"])),
        ("codes kept", f"{100 * scores['codes_kept_share']:.1f}% of {scores['codes']}"),
        ("s / title", str(meta.get("seconds_per_title", "?"))),
    ]
    return "<p>" + "".join(f'<span class="big">{_e(k)}<b>{_e(v)}</b></span>' for k, v in figures) + "</p>"


def _rows(items: list[dict[str, Any]]) -> str:
    head = "<tr><th>id</th><th>source</th><th>reference</th><th>output</th><th>chrF</th><th>status</th></tr>"
    body = []
    for i in items:
        notes = "<br>".join(_e(n) for n in i["notes"] + ([i["error"]] if i["error"] else []))
        lost = (
            f"<br><span class='bad'>codes lost: {_e(', '.join(i['codes_lost']))}</span>"
            if i["codes_lost"]
            else ""
        )
        body.append(
            f"<tr><td>{_e(i['id'])}</td><td>{_e(i['source'])}</td><td>{_e(i['reference'])}</td>"
            f"<td>{_e(i['output'])}{lost}</td><td class='n'>{i['chrf']:.1f}</td>"
            f"<td>{_e(i['status'])}<br><span class='muted'>{notes}</span></td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>" if body else "<p class='muted'>None.</p>"


def render_translation_html(report: dict[str, Any]) -> str:
    meta, scores, items = report.get("meta", {}), report["scores"], report["items"]
    facts = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in meta.items())
    left = [i for i in items if i["leftover"]]
    worst = sorted(items, key=lambda i: i["chrf"])[:WORST]
    counts = f"{scores['done']} done, {scores['flagged']} flagged, {scores['failed']} failed"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>skuforge translation evaluation</title><style>{_CSS}</style></head><body>"
        "<h1>Translation: evaluation</h1>"
        f"{_headline(scores, meta)}<p>{_e(counts)}</p><table>{facts}</table>"
        "<h2>Outputs with text left in the source script</h2>"
        f"{_rows(left)}"
        f"<h2>Lowest chrF (first {WORST})</h2>"
        f"{_rows(worst)}"
        "<p class='muted'>chrF and BLEU are sacrebleu corpus scores, lowercased. A code is a token of Latin "
        "letters and digits with a digit in it (SC-MK-010, 500ml, 49146); it is kept when the output has it, "
        "ignoring case and spaces.</p>"
        "</body></html>"
    )
