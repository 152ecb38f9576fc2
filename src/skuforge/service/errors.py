"""The service's single error boundary: every API failure is `{"error": {"code", "message", "hint"}}`.

skuforge's own exceptions keep their message and hint; HTTP errors (401, 404, 405, 413 ...), request
validation (422) and unexpected crashes (500, no traceback sent) are mapped to the same shape. Console pages
(paths outside /api) get the same information as an HTML page, and a 401 there sends the user to the login.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from skuforge.errors import (
    BudgetExceeded,
    ConfigError,
    ExtraMissing,
    NotFoundError,
    ProviderError,
    SkuforgeError,
    UserError,
)

log = logging.getLogger("skuforge.service")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_type",
    422: "validation_error",
    500: "internal_error",
    501: "not_installed",
    502: "provider_error",
}
_HINTS = {
    401: "Send 'Authorization: Bearer <token>' (the token is printed by `skuforge serve` and kept in "
    "SKUFORGE_HOME/service-token), or log in to the console.",
    404: "Check the address and the id; list what exists with the matching GET endpoint.",
    405: "See the API reference at /docs for the methods this path accepts.",
    500: "This is a bug in skuforge: the server log has the details. Please report it.",
}


class ApiError(Exception):
    """An HTTP error with a machine-readable code, a message and a hint: raised by handlers."""

    def __init__(self, status: int, message: str, hint: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint
        self.code = code or _CODES.get(status, "error")


def status_for(exc: SkuforgeError) -> tuple[int, str]:
    """HTTP status and code for one of skuforge's exceptions."""
    if isinstance(exc, NotFoundError):
        return 404, "not_found"
    if isinstance(exc, ExtraMissing):
        return 501, "not_installed"
    if isinstance(exc, ConfigError):
        return 400, "config_error"
    if isinstance(exc, UserError):
        return 400, type(exc).__name__.removesuffix("Error").lower() + "_error"
    if isinstance(exc, ProviderError):
        return 502, "provider_error"
    if isinstance(exc, BudgetExceeded):
        return 402, "budget_exceeded"
    return 400, "error"


def error_body(code: str, message: str, hint: str | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, "hint": hint}
    body.update(extra)
    return {"error": body}


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api") and request.url.path not in ("/openapi.json",)


def _respond(
    request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    if _wants_html(request):
        if status == 401:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            lang = request.query_params.get("lang")
            extra = f"&lang={quote(lang)}" if lang else ""
            return RedirectResponse(f"/login?next={quote(target)}{extra}", status_code=303)
        from skuforge.service.console.render import error_page

        return error_page(request, status, body["error"])
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the shared shape."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> Response:
        return _respond(request, exc.status, error_body(exc.code, exc.message, exc.hint))

    @app.exception_handler(SkuforgeError)
    async def _skuforge(request: Request, exc: SkuforgeError) -> Response:
        status, code = status_for(exc)
        return _respond(request, status, error_body(code, exc.message, exc.hint))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        code = _CODES.get(exc.status_code, "error")
        headers = dict(exc.headers or {})
        return _respond(
            request, exc.status_code, error_body(code, message, _HINTS.get(exc.status_code)), headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = problems[0] if problems else {"where": "", "message": "invalid request"}
        message = f"Invalid request: {first['where']}: {first['message']}"
        hint = "Fix the fields listed under 'problems'; the API reference is at /docs."
        return _respond(request, 422, error_body("validation_error", message, hint, problems=problems))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        message = f"Internal error while handling {request.method} {request.url.path}."
        return _respond(request, 500, error_body("internal_error", message, _HINTS[500]))
