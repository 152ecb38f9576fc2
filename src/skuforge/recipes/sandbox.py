"""Sandboxed Jinja2 for recipe templates: recipes come from users, so a template may not reach Python.

Templates run in an `ImmutableSandboxedEnvironment` (no `_`-attributes, no mutation of the row), with
`StrictUndefined` so a field the row lacks is an error that names it, not an empty string. Each render has a
budget: at most `MAX_OUTPUT` characters out and `MAX_ITERATIONS` steps of `range`, and string or list
repetition is capped, so a hostile or careless template cannot exhaust memory or CPU.

`when:` expressions of conditional rules use a lenient twin: a catalog without a `category` column simply
matches no category rule.

Two globals reach knowledge bases (see `skuforge.knowledge.prompts`): `knowledge('kb', query=..., k=3,
where=...)` and `examples(k=3)`. What they return is recorded while `recording_sources()` is open, so the step
that renders a request can say which passages and examples it used.
"""

from __future__ import annotations

import contextvars
import json
import operator
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, pass_context
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_OUTPUT = 200_000
MAX_ITERATIONS = 10_000
MAX_SEQUENCE = 100_000

_budget: contextvars.ContextVar[list[int]] = contextvars.ContextVar("recipe_loop_budget")
_sources: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "recipe_sources", default=None
)


class MissingName(UndefinedError):
    """A template used a name or key that is not there; `obj` is what it was looked up on."""

    def __init__(self, message: str, name: str | None, obj: Any) -> None:
        super().__init__(message)
        self.name, self.obj = name, obj


class BudgetError(SecurityError):
    """A render went over its output or iteration budget."""


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


def _counted_range(*args: int) -> Iterator[int]:
    values = range(*args)
    if len(values) > MAX_ITERATIONS:
        raise BudgetError(f"range() of {len(values)} items is over the limit of {MAX_ITERATIONS}")
    budget = _budget.get(None)
    for value in values:
        if budget is not None:
            budget[0] += 1
            if budget[0] > MAX_ITERATIONS:
                raise BudgetError(f"the template looped more than {MAX_ITERATIONS} times")
        yield value


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


@pass_context
def _knowledge(context: Any, kb: str, query: Any = None, **options: Any) -> Any:
    """`knowledge('kb', query=..., k=3, where=..., max_tokens=600, mode='hybrid')` in a template."""
    from skuforge.knowledge.prompts import knowledge

    return _record(knowledge(str(kb), None if query is None else str(query), row=_row_of(context), **options))


@pass_context
def _examples(context: Any, k: int = 3, query: Any = None, **options: Any) -> Any:
    """`examples(k=3)`: approved outputs of this recipe for the most similar products."""
    from skuforge.knowledge.prompts import examples

    recipe = context.get("recipe")
    name = recipe.get("name") if isinstance(recipe, Mapping) else None
    if not name:
        raise ValueError("examples() needs the recipe's name; it works only inside a recipe")
    found = examples(str(name), None if query is None else str(query), row=_row_of(context), k=k, **options)
    return _record(found)


class _Env(ImmutableSandboxedEnvironment):
    """The sandbox, with unsafe attribute access raising at once and repetition capped."""

    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise BudgetError(f"exponent {right} is over the limit of 64")
        if op == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > MAX_SEQUENCE:
                    raise BudgetError(f"repetition to {len(seq) * times} items is over {MAX_SEQUENCE}")
        return {"*": operator.mul, "**": operator.pow}[op](left, right)


def _make_env(undefined: type[Undefined]) -> _Env:
    env = _Env(undefined=undefined, autoescape=False, keep_trailing_newline=False)
    env.globals["range"] = _counted_range
    env.filters["tojson"] = dumps
    env.filters["language_name"] = language_name
    env.filters["merge"] = _merge
    env.filters["without"] = _without
    env.filters["truncate_chars"] = _truncate_chars
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
    """Render within the output and loop budget. Errors propagate for the caller to name the section."""
    token = _budget.set([0])
    try:
        parts: list[str] = []
        size = 0
        for chunk in template.generate(dict(context)):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise BudgetError(f"the template produced more than {MAX_OUTPUT} characters")
            parts.append(chunk)
        return "".join(parts)
    finally:
        _budget.reset(token)


def evaluate(expression: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate a compiled expression within the loop budget."""
    token = _budget.set([0])
    try:
        value = expression(**dict(context))
        if isinstance(value, Undefined):
            return None
        return value
    finally:
        _budget.reset(token)


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
    "dumps",
    "evaluate",
    "is_cjk",
    "language_name",
    "neutralise",
    "recording_sources",
    "render",
]
