"""Sandboxed Jinja2 for recipe templates: recipes come from users, so a template may not reach Python.

Templates run in an `ImmutableSandboxedEnvironment` (no `_`-attributes, no mutation of the row), with
`StrictUndefined` so a field the row lacks is an error that names it, not an empty string. Every render is
bounded in time, loop steps and the size of everything it builds, checked before the memory is spent (see
`skuforge.recipes.bounds`): `{{ 'x'|center(999999999) }}` is refused at once, not after a gigabyte.

`when:` expressions of conditional rules use a lenient twin: a catalog without a `category` column simply
matches no category rule.

Two globals reach knowledge bases (see `skuforge.knowledge.prompts`): `knowledge('kb', query=..., k=3,
where=...)` and `examples(k=3)`. What they return is recorded while `recording_sources()` is open, so the step
that renders a request can say which passages and examples it used. `dry_run()` turns them into empty
stubs, for checking a recipe's templates against a sample row without touching a knowledge base.
"""

from __future__ import annotations

import contextvars
import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, nodes, pass_context
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from skuforge.recipes import bounds
from skuforge.recipes.bounds import MAX_ITERATIONS, MAX_OUTPUT, BudgetError

_sources: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "recipe_sources", default=None
)
_dry_run: contextvars.ContextVar[bool] = contextvars.ContextVar("recipe_dry_run", default=False)


class MissingName(UndefinedError):
    """A template used a name or key that is not there; `obj` is what it was looked up on."""

    def __init__(self, message: str, name: str | None, obj: Any) -> None:
        super().__init__(message)
        self.name, self.obj = name, obj


class _StrictUndefined(StrictUndefined):
    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        if self._undefined_exception is not UndefinedError:
            raise self._undefined_exception(self._undefined_message)
        raise MissingName(self._undefined_message, self._undefined_name, self._undefined_obj)


# Jinja binds the operator methods (__str__, __iter__, __eq__ ...) to the base class's function when the
# class is created, so the override above has to be bound to each of them again.
for _klass in (Undefined, StrictUndefined):
    for _name, _value in list(vars(_klass).items()):
        if _value is Undefined._fail_with_undefined_error and _name != "_fail_with_undefined_error":
            setattr(_StrictUndefined, _name, _StrictUndefined._fail_with_undefined_error)


def dumps(value: Any) -> str:
    """JSON for prompts: readable (no ASCII escaping, no HTML escaping) and unable to close a data block."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return neutralise(text)


_TAG = re.compile(r"<(/?\s*product)", re.IGNORECASE)


def neutralise(text: str) -> str:
    """Escape `<product>`/`</product>` inside data so product text cannot end the data block early.

    In JSON `\\u003c` is the same string as `<`, so the data the model reads is unchanged.
    """
    return _TAG.sub(r"\\u003c\1", text)


_LANGUAGES = {
    "ar": "Arabic",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "en-gb": "British English",
    "en-us": "American English",
    "es": "Spanish",
    "fi": "Finnish",
    "fr": "French",
    "he": "Hebrew",
    "hi": "Hindi",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "ms": "Malay",
    "nl": "Dutch",
    "no": "Norwegian",
    "nb": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "pt-br": "Brazilian Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sk": "Slovak",
    "sv": "Swedish",
    "th": "Thai",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
    "zh": "Simplified Chinese",
    "zh-cn": "Simplified Chinese",
    "zh-hans": "Simplified Chinese",
    "zh-tw": "Traditional Chinese",
    "zh-hk": "Traditional Chinese",
    "zh-hant": "Traditional Chinese",
}


def language_name(locale: Any) -> str:
    """'de' -> 'German', 'zh-CN' -> 'Simplified Chinese'; an unknown code is returned as it is."""
    code = str(locale or "").strip().replace("_", "-").lower()
    return _LANGUAGES.get(code) or _LANGUAGES.get(code.split("-")[0]) or str(locale)


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def is_cjk(text: Any) -> bool:
    """True when at least 30% of the letters are Chinese, Japanese or Korean (counted in characters)."""
    text = str(text or "")
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and len(_CJK.findall(text)) / len(letters) >= 0.3


def _merge(left: Any, right: Any) -> dict[str, Any]:
    """`a | merge(b)`: a new mapping with b's entries over a's (None on either side counts as empty)."""
    return {**dict(left or {}), **dict(right or {})}


def _without(mapping: Any, *keys: Any) -> dict[str, Any]:
    """`row | without('question')`: a new mapping without those keys (the sandbox cannot delete from one)."""
    drop = {str(k) for k in keys}
    return {k: v for k, v in dict(mapping or {}).items() if str(k) not in drop}


def _truncate_chars(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


@contextmanager
def recording_sources() -> Iterator[list[dict[str, Any]]]:
    """Collect what `knowledge()` and `examples()` return while rendering (deduplicated, in order)."""
    used: list[dict[str, Any]] = []
    token = _sources.set(used)
    try:
        yield used
    finally:
        _sources.reset(token)


def _record(found: Any) -> Any:
    used = _sources.get()
    if used is not None:
        for source in getattr(found, "sources", []):
            if source not in used:
                used.append(source)
    return found


def _row_of(context: Any) -> dict[str, Any]:
    row = context.get("row")
    return dict(row) if isinstance(row, Mapping) else {}


@contextmanager
def dry_run() -> Iterator[None]:
    """While open, `knowledge()` and `examples()` return nothing and touch no knowledge base."""
    token = _dry_run.set(True)
    try:
        yield
    finally:
        _dry_run.reset(token)


@pass_context
def _knowledge(context: Any, kb: str, query: Any = None, **options: Any) -> Any:
    """`knowledge('kb', query=..., k=3, where=..., max_tokens=600, mode='hybrid')` in a template."""
    if _dry_run.get():
        return ""
    from skuforge.knowledge.prompts import knowledge

    with bounds.paused():
        found = knowledge(str(kb), None if query is None else str(query), row=_row_of(context), **options)
    return _record(found)


@pass_context
def _examples(context: Any, k: int = 3, query: Any = None, **options: Any) -> Any:
    """`examples(k=3)`: approved outputs of this recipe for the most similar products."""
    if _dry_run.get():
        return ""
    from skuforge.knowledge.prompts import examples

    recipe = context.get("recipe")
    name = recipe.get("name") if isinstance(recipe, Mapping) else None
    if not name:
        raise ValueError("examples() needs the recipe's name; it works only inside a recipe")
    text = None if query is None else str(query)
    with bounds.paused():
        found = examples(str(name), text, row=_row_of(context), k=k, **options)
    return _record(found)


class _Env(ImmutableSandboxedEnvironment):
    """The sandbox: unsafe attribute access raises at once, and every hook keeps the render in bounds."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        return bounds.binop(op, left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        bounds.tick()
        args = bounds.method_args(obj, args, kwargs)
        return bounds.check_result(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`'{:>999}'.format(x)`: widths and arguments are checked before Jinja's sandboxed formatter runs."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt, name = value.__self__, value.__name__

        def checked(*args: Any, **kwargs: Any) -> str:
            if name == "format_map":
                bounds.check_format(fmt, (), args[0] if args and isinstance(args[0], Mapping) else {})
            else:
                bounds.check_format(fmt, args, kwargs)
            return wrapped(*args, **kwargs)

        return checked

    def _generate(
        self, source: nodes.Template, name: str | None, filename: str | None, defer_init: bool = False
    ) -> str:
        tree = bounds.bound_tree(source)
        tree.set_environment(self)
        return super()._generate(tree, name, filename, defer_init=defer_init)


def _make_env(undefined: type[Undefined]) -> _Env:
    env = _Env(undefined=undefined, autoescape=False, keep_trailing_newline=False, finalize=bounds.emitted)
    env.globals["range"] = bounds.counted_range
    env.globals.pop("lipsum", None)  # lipsum(n=10**9) would write a gigabyte of Latin
    env.filters["language_name"] = language_name
    env.filters["merge"] = _merge
    env.filters["without"] = _without
    env.filters["truncate_chars"] = _truncate_chars
    env.filters.update(bounds.bounded_filters({"tojson": dumps}))
    env.tests["cjk"] = is_cjk
    env.globals["language_name"] = language_name
    env.globals["knowledge"] = _knowledge
    env.globals["examples"] = _examples
    return env


STRICT = _make_env(_StrictUndefined)
LENIENT = _make_env(Undefined)


def compile_template(source: str) -> Template:
    """Compile a template; raises TemplateSyntaxError with `lineno` for the loader to map to the file."""
    return STRICT.from_string(source)


def compile_expression(source: str, *, lenient: bool = False) -> Any:
    """Compile a Jinja expression such as `category == 'Shoes'` or `params.locales`."""
    return (LENIENT if lenient else STRICT).compile_expression(source, undefined_to_none=False)


def render(template: Template, context: Mapping[str, Any]) -> str:
    """Render within the render's bounds, the output size checked chunk by chunk as it is produced.
    Errors propagate for the caller to name the section."""
    token = bounds.start()
    try:
        parts: list[str] = []
        size = 0
        for chunk in template.generate(dict(context)):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise BudgetError(f"the template produced more than {MAX_OUTPUT:,} characters")
            parts.append(chunk)
        return "".join(parts)
    finally:
        bounds.stop(token)


def evaluate(expression: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate a compiled expression within the render's bounds."""
    token = bounds.start()
    try:
        value = expression(**dict(context))
        return None if isinstance(value, Undefined) else value
    finally:
        bounds.stop(token)


TEMPLATE_ERRORS = (TemplateError, RecursionError, TypeError, ValueError, ArithmeticError, LookupError)

__all__ = [
    "MAX_ITERATIONS",
    "MAX_OUTPUT",
    "BudgetError",
    "MissingName",
    "SecurityError",
    "TEMPLATE_ERRORS",
    "TemplateSyntaxError",
    "compile_expression",
    "compile_template",
    "dry_run",
    "dumps",
    "evaluate",
    "is_cjk",
    "language_name",
    "neutralise",
    "recording_sources",
    "render",
]
