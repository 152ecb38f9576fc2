"""Who may call the service: one shared token, as a bearer header (API) or a signed session cookie (console).

The token comes from `SKUFORGE_TOKEN`, or from `SKUFORGE_HOME/service-token`, created (mode 0600) on first
start and printed once. Logging in to the console with the token sets a session cookie (signed with
itsdangerous, HttpOnly, SameSite=Strict, Secure) that carries a per-session CSRF token; every POST from the
console must echo it (form field `csrf` or header `X-CSRF-Token`). Bearer calls need no CSRF token: a
browser never adds that header on its own.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request, Response

from skuforge.errors import require
from skuforge.service.errors import ApiError

COOKIE = "skuforge_session"
SESSION_MAX_AGE_S = 12 * 3600
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
TOKEN_FILE = "service-token"


def load_token(home: Path) -> tuple[str, bool]:
    """The service token and whether it was just created (so the caller prints it once)."""
    given = os.environ.get("SKUFORGE_TOKEN", "").strip()
    if given:
        return given, False
    path = home / TOKEN_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), False
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, True


@dataclass(frozen=True)
class Identity:
    """An authenticated caller: `via` is 'bearer' or 'session'; sessions carry their CSRF token."""

    via: str
    csrf: str = ""
    user: str = "operator"


def _serializer(token: str) -> Any:
    itsdangerous = require("itsdangerous", "The web service", "service")
    return itsdangerous.URLSafeTimedSerializer(token, salt="skuforge-session")


def same_token(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def start_session(response: Response, token: str, user: str, *, secure: bool) -> str:
    """Set the signed session cookie; returns the new session's CSRF token."""
    csrf = secrets.token_urlsafe(24)
    value = _serializer(token).dumps({"csrf": csrf, "user": user[:64] or "operator"})
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        secure=secure,
        samesite="strict",
        path="/",
    )
    return csrf


def end_session(response: Response, *, secure: bool) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, secure=secure, samesite="strict")


def read_session(request: Request, token: str) -> Identity | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    itsdangerous = require("itsdangerous", "The web service", "service")
    try:
        data = _serializer(token).loads(raw, max_age=SESSION_MAX_AGE_S)
    except itsdangerous.BadData:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        return None
    return Identity(via="session", csrf=data["csrf"], user=str(data.get("user") or "operator"))


def identify(request: Request, token: str) -> Identity:
    """The caller, or a 401 in the shared error shape. Bearer first, then the console's session cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and given:
        if same_token(given.strip(), token):
            return Identity(via="bearer", user=request.headers.get("x-skuforge-user", "api")[:64] or "api")
        raise ApiError(401, "The bearer token is not valid.", _bad_token_hint())
    session = read_session(request, token)
    if session is None:
        raise ApiError(401, "This request needs a token.", _bad_token_hint())
    return session


def _bad_token_hint() -> str:
    return (
        "Send 'Authorization: Bearer <token>'. The token is SKUFORGE_TOKEN, or the one `skuforge serve` "
        "printed on first start (kept in SKUFORGE_HOME/service-token)."
    )


def check_csrf(identity: Identity, given: str | None) -> None:
    """Reject a state-changing console request whose CSRF token does not match the session's."""
    if identity.via != "session":
        return
    if not given or not hmac.compare_digest(given.encode(), identity.csrf.encode()):
        raise ApiError(
            403,
            "The form's security token is missing or out of date.",
            "Reload the page and try again; if it keeps happening, log out and in again.",
            code="csrf_failed",
        )


def api_caller(request: Request) -> Identity:
    """FastAPI dependency for /api routes: authenticated, and CSRF-checked when a session changes state."""
    from skuforge.service.context import get_ctx

    identity = identify(request, get_ctx(request).options.token)
    if request.method not in SAFE_METHODS:
        check_csrf(identity, request.headers.get("x-csrf-token"))
    return identity


Caller = Annotated[Identity, Depends(api_caller)]
"""An authenticated API caller (bearer token, or a console session with its CSRF header on writes)."""
