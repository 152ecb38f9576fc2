"""Recipe parameters: the CLI and the web console give strings ("locales=de,fr"); recipes want typed values.

Types: `str`, `int`, `float`, `bool`, `list` (comma-separated strings) and `map` (allowed values per key,
`color=red|blue;material=cotton|wool`, or a JSON object). Values that are already typed pass through.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from typing import Any

import orjson

from skuforge.errors import RecipeError
from skuforge.recipes.spec import ParamSpec

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off", ""}


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    if text.startswith("["):
        return _as_list(orjson.loads(text))
    return [part.strip() for part in text.split(",") if part.strip()]


def _as_map(value: Any) -> dict[str, list[str]]:
    if isinstance(value, Mapping):
        return {
            str(k): _as_list(v) if not isinstance(v, str) else _split_choices(v) for k, v in value.items()
        }
    text = str(value).strip()
    if text.startswith("{"):
        return _as_map(orjson.loads(text))
    out: dict[str, list[str]] = {}
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        key, sep, values = entry.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"'{entry}' is not key=value1|value2")
        out[key.strip()] = _split_choices(values)
    return out


def _split_choices(text: str) -> list[str]:
    return [v.strip() for v in text.split("|") if v.strip()]


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"'{value}' is not true or false")


_COERCE = {
    "str": lambda v: v if isinstance(v, str) else str(v),
    "int": lambda v: v if isinstance(v, int) and not isinstance(v, bool) else int(str(v).strip()),
    "float": lambda v: float(v) if isinstance(v, int | float) else float(str(v).strip()),
    "bool": _as_bool,
    "list": _as_list,
    "map": _as_map,
}


def coerce(recipe: str, name: str, spec: ParamSpec, value: Any) -> Any:
    """One value to the declared type, or a RecipeError naming the recipe, the parameter and the value."""
    try:
        typed = _COERCE[spec.type](value)
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise RecipeError(
            f"Recipe '{recipe}': parameter '{name}' must be {spec.type}, got {value!r} ({exc}).",
            _example(name, spec),
        ) from exc
    if spec.choices is not None:
        bad = [v for v in (typed if isinstance(typed, list) else [typed]) if str(v) not in spec.choices]
        if bad:
            raise RecipeError(
                f"Recipe '{recipe}': parameter '{name}' does not accept {', '.join(map(str, bad))}.",
                f"Choose from: {', '.join(spec.choices)}.",
            )
    return typed


def _example(name: str, spec: ParamSpec) -> str:
    samples = {
        "str": "text",
        "int": "80",
        "float": "0.5",
        "bool": "true",
        "list": "de,fr",
        "map": "color=red|blue;material=cotton",
    }
    return f"Give it like: {name}={samples[spec.type]}"


def resolve(recipe: str, specs: Mapping[str, ParamSpec], given: Mapping[str, Any]) -> dict[str, Any]:
    """Declared defaults overridden by `given`; unknown names and missing required values are errors."""
    for name in given:
        if name not in specs:
            close = difflib.get_close_matches(name, list(specs), n=1)
            known = ", ".join(sorted(specs)) or "none"
            hint = f"Did you mean '{close[0]}'? " if close else ""
            raise RecipeError(
                f"Recipe '{recipe}' has no parameter '{name}'.", f"{hint}Its parameters: {known}."
            )
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given:
            out[name] = coerce(recipe, name, spec, given[name])
        else:
            out[name] = copy.deepcopy(spec.default) if spec.default is not None else _empty(spec)
        if spec.required and out[name] in (None, "", [], {}):
            raise RecipeError(
                f"Recipe '{recipe}' needs parameter '{name}'"
                + (f" ({spec.help})" if spec.help else "")
                + ".",
                _example(name, spec),
            )
    return out


def _empty(spec: ParamSpec) -> Any:
    return {"list": [], "map": {}, "str": ""}.get(spec.type)


def defaults(recipe: str, specs: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """The declared defaults, typed (a default of the wrong type is a recipe mistake, reported here)."""
    return {
        name: coerce(recipe, name, spec, spec.default) if spec.default is not None else _empty(spec)
        for name, spec in specs.items()
    }
