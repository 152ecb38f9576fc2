"""The check contract: a check looks at one item (source row + parsed output) and returns findings.

A check is built once per run from its spec (so it may keep state across items, as the near-duplicate check
does) and then called for every item. A finding that is not `ok` carries a reason; the recipe's `on_fail` for
that check decides whether the item is flagged (goes to review) or failed.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["flag", "fail"]


class CheckSpec(BaseModel):
    """How a recipe declares a check: `- {check: length, on_fail: flag, field: title, max_chars: 60}`."""

    model_config = ConfigDict(extra="allow")
    check: str
    on_fail: Action = "flag"

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class CheckItem(BaseModel):
    """What a check sees."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    row: dict[str, Any]
    output: Any
    recipe: str = ""
    step: str = ""
    locale: str | None = Field(None, description="target locale of this item, e.g. 'de' or 'zh-CN'")
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    row_id: str = ""
    validated: bool = Field(
        False,
        description="the output was parsed against `schema` already (the schema check need not redo it)",
    )
    calls: Any = Field(
        None,
        exclude=True,
        description="for checks that call a model: `await item.calls.generate(model, request)` goes "
        "through the run's limits, retries, cache and budget, and its cost lands on this item",
    )


class Finding(BaseModel):
    check: str
    ok: bool
    action: Action = "flag"
    reason: str = ""
    field: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


CATALOG_NOTE = "catalog_values"
"""The `check` of a finding that flags nothing: a value the catalog's filled rows cut to its measurement,
moved to another attribute or dropped (`Step.settle`), kept with the item so that the export, the console
and the review say why."""


def catalog_notes(findings: Iterable[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The `CATALOG_NOTE` findings among an item's stored ones."""
    return [f for f in findings or [] if f.get("check") == CATALOG_NOTE]


class Check(Protocol):
    """A check. `__call__` returns the findings, or an awaitable of them when it calls a model."""

    name: str

    def __call__(self, item: CheckItem) -> list[Finding] | Awaitable[list[Finding]]: ...


CheckFactory = Callable[[CheckSpec], Check]
_REGISTRY: dict[str, CheckFactory] = {}


def register(name: str) -> Callable[[CheckFactory], CheckFactory]:
    """Register a check factory under `name` (used in recipes as `check: name`)."""

    def wrap(factory: CheckFactory) -> CheckFactory:
        _REGISTRY[name] = factory
        return factory

    return wrap


def available(names: Iterable[str] | None = None) -> list[str]:
    """The registered checks. With `names`, only the modules of those are loaded (all of them when one of
    the names is not a built-in check's), so checking a recipe imports only what its checks need."""
    if names is None:
        _load_builtins()
    for name in names or ():
        _load_builtin(name)
    return sorted(_REGISTRY)


def build(spec: CheckSpec) -> Check:
    _load_builtin(spec.check)
    if spec.check not in _REGISTRY:
        import difflib

        from skuforge.errors import RecipeError

        close = difflib.get_close_matches(spec.check, list(_REGISTRY), n=1)
        hint = f"Did you mean '{close[0]}'?" if close else f"Known checks: {', '.join(sorted(_REGISTRY))}."
        raise RecipeError(f"Unknown check '{spec.check}'.", hint)
    return _REGISTRY[spec.check](spec)


def findings_now(check: Check, item: CheckItem) -> list[Finding]:
    """A check's findings from synchronous code (a review edit); an asynchronous check runs to its end on
    a private event loop in a helper thread, so this works whether or not the caller is inside a loop."""
    found = check(item)
    if not inspect.isawaitable(found):
        return found
    awaitable = found

    async def wait() -> list[Finding]:
        try:
            return await awaitable
        finally:
            close = getattr(check, "aclose", None)  # sessions opened on this private loop end with it
            if close is not None:
                await close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, wait()).result()


def verdict(findings: list[Finding]) -> Literal["done", "flagged", "failed"]:
    """The item's state from its findings: any failing 'fail' check fails it, any 'flag' flags it."""
    bad = [f for f in findings if not f.ok]
    if any(f.action == "fail" for f in bad):
        return "failed"
    return "flagged" if bad else "done"


def _load_builtin(name: str) -> None:
    """The module of a built-in check is named after it (except `moderation`, in `safety`): load only that
    one, so a run does not import what other checks need (numpy, the safety packs); all, failing that."""
    import importlib.util

    module = f"skuforge.checks.{'safety' if name == 'moderation' else name}"
    if name not in _REGISTRY and name.isidentifier() and importlib.util.find_spec(module) is not None:
        importlib.import_module(module)
    if name not in _REGISTRY:
        _load_builtins()


def _load_builtins() -> None:
    import importlib
    import pkgutil

    import skuforge.checks as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name != "base":
            importlib.import_module(f"skuforge.checks.{mod.name}")
