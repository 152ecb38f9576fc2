"""Server-side rendering for the console: Jinja2 templates, the en/zh string catalogue, the error page.

The language comes from `?lang=zh|en` (remembered in a cookie) or the browser's Accept-Language. Strings
live in `strings.yaml`; a key missing in one language falls back to English, then to the key itself.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, Undefined, select_autoescape

from skuforge import yamlfile
from skuforge.service.auth import read_session
from skuforge.service.cron import stamp

HERE = Path(__file__).parent
LANGS = ("en", "zh")
LANG_COOKIE = "skuforge_lang"


@lru_cache(maxsize=1)
def strings() -> dict[str, dict[str, str]]:
    return yamlfile.load((HERE / "strings.yaml").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters["when"] = lambda ts: time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"
    env.filters["megabytes"] = lambda n: f"{n / 1e6:,.2f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} KB"
    env.filters["money"] = lambda x: "-" if _blank(x) else (f"${x:,.4f}" if x < 1 else f"${x:,.2f}")
    env.filters["thousands"] = lambda n: "-" if _blank(n) else f"{n:,}"
    env.filters["duration"] = duration
    env.filters["percent"] = lambda x: "-" if _blank(x) else f"{x * 100:.1f}%"
    env.filters["rate"] = lambda x: "-" if _blank(x) else (f"{x:,.0f}" if x >= 10 else f"{x:.1f}")
    env.filters["utc"] = lambda ts: "-" if _blank(ts) else stamp(ts)
    env.filters["clock"] = lambda ts: "-" if _blank(ts) else time.strftime("%H:%M:%S", time.localtime(ts))
    return env


def _blank(value: Any) -> bool:
    """None, or a figure a page does not have yet (a job the worker has not started has no live view)."""
    return value is None or isinstance(value, Undefined)


def duration(seconds: Any) -> str:
    """Seconds as people say them: 45 s, 12 min, 3.2 h, 24 h (the console's JS writes the same)."""
    if _blank(seconds):
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    hours = seconds / 3600
    return f"{hours:.0f} h" if hours >= 10 else f"{hours:.1f} h"


def language(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return asked
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie in LANGS:
        return cookie
    accept = request.headers.get("accept-language", "").lower()
    return "zh" if accept.startswith("zh") else "en"


def translator(lang: str) -> Any:
    table = strings()

    def t(key: str, **values: Any) -> str:
        entry = table.get(key, {})
        text = entry.get(lang) or entry.get("en") or key
        return text.format(**values) if values else text

    return t


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a console page with the language, the translator and the session's CSRF token."""
    lang = language(request)
    ctx = request.app.state.ctx
    session = read_session(request, ctx.options.token)
    html = (
        environment()
        .get_template(template)
        .render(
            request=request,
            lang=lang,
            t=translator(lang),
            csrf=session.csrf if session else "",
            user=session.user if session else None,
            path=request.url.path,
            **context,
        )
    )
    response = HTMLResponse(
        html,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        },
    )
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict", httponly=True)
    return response


def error_page(request: Request, status: int, error: dict[str, Any]) -> HTMLResponse:
    return page(request, "error.html", status=status, error=error)
