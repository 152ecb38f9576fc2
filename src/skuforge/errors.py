"""The exception tree. Every error a user can cause says what failed, where, and what to do next.

SkuforgeError                 message + hint; the CLI prints both, no traceback
├── UserError                 the user's input or settings are wrong (exit code 2)
│   ├── CatalogError          unreadable file, wrong encoding, missing sheet or column
│   ├── SelectionError        a bad --where predicate, an unknown id column
│   ├── RecipeError           unknown recipe, YAML or template mistakes
│   │   └── MissingFieldError a row lacks a field the recipe needs
│   ├── ConfigError           unknown model, missing API key, bad config file
│   └── NotFoundError         unknown job, knowledge base, review file ...
├── ProviderError             a model call failed
│   ├── TransientError        worth retrying: 429, 5xx, dropped connection, timeout
│   │   └── RateLimitError    carries retry_after seconds when the server said so
│   ├── PermanentError        not worth retrying: 400, 401, 403, context too long
│   └── ProviderUnavailable   the provider cannot be used at all (unreachable, bad key, circuit open):
│                             the run pauses with the reason; the item is not recorded as failed
├── OutputError               the model answered, but not what the schema asks for
├── BudgetExceeded            the run stopped before spending more than --max-cost
└── ExtraMissing              an optional part is not installed; names the pip line
"""

from __future__ import annotations

from typing import Any


class SkuforgeError(Exception):
    """Base error. `message` says what failed and where; `hint` says what to do next."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class UserError(SkuforgeError):
    exit_code = 2


class CatalogError(UserError):
    pass


class SelectionError(UserError):
    pass


class RecipeError(UserError):
    pass


class MissingFieldError(RecipeError):
    """A row lacks a field the recipe needs. Names the row, the field and the recipe."""

    def __init__(self, recipe: str, field: str, row: str, source: str | None = None) -> None:
        where = f"row {row}" + (f" of {source}" if source else "")
        super().__init__(
            f"Recipe '{recipe}' needs field '{field}', missing in {where}.",
            f"Add a '{field}' column, or give it a default under 'defaults:' in the recipe.",
        )
        self.recipe, self.field, self.row = recipe, field, row


class ConfigError(UserError):
    pass


class NotFoundError(UserError):
    pass


class ProviderError(SkuforgeError):
    exit_code = 3

    def __init__(self, message: str, hint: str | None = None, *, status: int | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


class TransientError(ProviderError):
    pass


class RateLimitError(TransientError):
    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint, status=status)
        self.retry_after = retry_after


class PermanentError(ProviderError):
    pass


class ProviderUnavailable(ProviderError):
    """Every request would fail the same way (unreachable base URL, rejected key, circuit breaker open).

    The engine stops sending, records nothing for the item that raised it, and pauses the job with this
    message, so fixing the cause and resuming loses nothing."""


class OutputError(SkuforgeError):
    """The model's answer is not valid JSON or does not match the output schema."""

    def __init__(self, message: str, hint: str | None = None, *, raw: str = "") -> None:
        super().__init__(message, hint)
        self.raw = raw


class BudgetExceeded(SkuforgeError):
    exit_code = 4


class ExtraMissing(UserError):
    def __init__(self, what: str, extra: str) -> None:
        super().__init__(
            f"{what} needs the optional part '{extra}', which is not installed.",
            f"Install it with: pip install 'skuforge[{extra}]'",
        )
        self.extra = extra


def require(module: str, what: str, extra: str) -> Any:
    """Import an optional dependency or fail with the exact pip line to run."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExtraMissing(what, extra) from exc
