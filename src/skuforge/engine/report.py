"""The trial report: one self-contained HTML file (inline CSS, no scripts, no external assets).

Everything a catalog row or a model answer contributes is escaped (Jinja2 autoescape), so a product title
such as `<script>` shows as text. The same figures are in `TrialResult.as_dict()` for machines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skuforge.engine.trial import TrialResult
from skuforge.errors import UserError

TEMPLATE = "trial.html"


def money(value: float | None, currency: str = "USD") -> str:
    if value is None:
        return "unknown"
    sign = "$" if currency == "USD" else f"{currency} "
    return f"{sign}{value:,.4f}" if value < 1 else f"{sign}{value:,.2f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _shown(value: Any) -> str:
    """A cell value or an output as short readable text (JSON for structures)."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, indent=1)
    return str(value)


def render_html(result: TrialResult) -> str:
    """The report's HTML text."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("skuforge.engine", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters.update(money=money, duration=duration, shown=_shown)
    template = env.get_template(TEMPLATE)
    return template.render(trial=result.as_dict(), p=result.projection)


def write_report(result: TrialResult, out: str | Path) -> Path:
    """Write the report to `out` (parent folders are created); returns its path."""
    path = Path(out).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(result), encoding="utf-8")
    except OSError as exc:
        raise UserError(
            f"Cannot write the trial report to {path}: {exc.strerror or exc}.",
            "Pass --out with a path in a folder you can write to.",
        ) from exc
    return path
