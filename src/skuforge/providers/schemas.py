"""The JSON Schema subset each server enforces, and the conversion of a recipe's schema into it.

A recipe's output schema is plain JSON Schema. Servers that enforce a schema accept only part of it, and
answer HTTP 400 for the rest, so each dialect gets a converted copy; the engine still validates the answer
against the recipe's own schema, so nothing a conversion drops goes unchecked.

- `openai-strict` (OpenAI `response_format: json_schema` with `strict: true`): every object lists all of
  its properties in `required` and sets `additionalProperties: false`; an optional property becomes
  required and nullable, and `drop_added_nulls` removes the nulls the model then writes for it. String
  length limits and defaults are not accepted.
- `anthropic` (Claude `output_config.format`): objects need `additionalProperties: false`; numeric and
  string-length limits are not accepted, nor `minItems` above 1 or `maxItems`.
- `gemini` (Gemini's OpenAI-compatible endpoint): an OpenAPI-style subset without `additionalProperties`,
  `$schema`, `default` or `const` (a `const` becomes a one-value `enum`).
- `json-schema`: sent as it is (servers that accept any schema, or only use it as a hint).

A tuple (`prefixItems`, as packed requests use to ask for several products in one answer) is accepted by
none of the three: it becomes `items: {anyOf: [...]}`, one alternative per position.

`check(schema, dialect)` lists what a dialect would refuse; the mock server uses it to validate bodies.
"""

from __future__ import annotations

from typing import Any

import orjson

from skuforge.providers.base import SchemaDialect

# Keywords each enforcing dialect accepts (anything else is refused by the server).
_COMMON = {"type", "properties", "required", "items", "enum", "description", "title", "anyOf"}
_COMMON |= {"$defs", "$ref"}
ALLOWED: dict[str, frozenset[str]] = {
    "openai-strict": frozenset(
        _COMMON
        | {"additionalProperties", "pattern", "format", "minimum", "maximum", "exclusiveMinimum"}
        | {"exclusiveMaximum", "multipleOf", "minItems", "maxItems", "const", "definitions"}
    ),
    "anthropic": frozenset(
        _COMMON | {"additionalProperties", "const", "default", "format", "pattern", "allOf", "minItems"}
    ),
    "gemini": frozenset(
        (_COMMON - {"$defs", "$ref"})
        | {"format", "nullable", "minimum", "maximum", "minItems", "maxItems", "propertyOrdering"}
        | {"minLength", "maxLength", "pattern"}
    ),
}
_CHILD_MAPS = ("properties", "$defs", "definitions")
_CHILD_LISTS = ("anyOf", "allOf", "oneOf")


def convert(schema: dict[str, Any], dialect: SchemaDialect) -> dict[str, Any]:
    """A copy of `schema` in `dialect`'s subset (unchanged for plain `json-schema`). A step sends the same
    schema object with every row, so each conversion is made once per schema object and dialect."""
    if dialect == "json-schema":
        return schema
    return _memo(("convert", dialect), schema, lambda: _convert(schema, dialect))


_MEMO: dict[tuple[Any, ...], tuple[Any, Any]] = {}
_MEMO_SIZE = 1024


def _memo(kind: tuple[Any, ...], schema: dict[str, Any], make: Any) -> Any:
    """`make()` once per (kind, schema object); the entry keeps the schema, so its id is never reused."""
    key = (*kind, id(schema))
    found = _MEMO.get(key)
    if found is not None and found[0] is schema:
        return found[1]
    if len(_MEMO) >= _MEMO_SIZE:  # per-row schemas (the attributes a row lacks) would grow it forever
        _MEMO.clear()
    value = make()
    _MEMO[key] = (schema, value)
    return value


def _convert(node: Any, dialect: str) -> Any:
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _CHILD_MAPS and isinstance(value, dict):
            out[key] = {name: _convert(child, dialect) for name, child in value.items()}
        elif key in _CHILD_LISTS and isinstance(value, list):
            out[key] = [_convert(child, dialect) for child in value]
        elif key == "items":
            out[key] = _convert(value, dialect)
        elif key == "prefixItems" and isinstance(value, list) and value:
            options = [_convert(child, dialect) for child in value]
            out["items"] = options[0] if len(options) == 1 else {"anyOf": options}
        else:
            out[key] = value
    if dialect == "gemini" and "const" in out:
        out.setdefault("enum", [out["const"]])
    if dialect == "anthropic" and isinstance(out.get("minItems"), int) and out["minItems"] > 1:
        out["minItems"] = 1
    out = {k: v for k, v in out.items() if k in ALLOWED[dialect]}
    if _is_object(out) and dialect in ("openai-strict", "anthropic"):
        out["additionalProperties"] = False
    if _is_object(out) and dialect == "openai-strict":
        _require_all(out)
    return out


def _is_object(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node


def _require_all(node: dict[str, Any]) -> None:
    """Strict mode: every property is required; the ones that were optional may be null instead."""
    props: dict[str, Any] = node.setdefault("properties", {})
    required = set(node.get("required") or [])
    for name, prop in props.items():
        if name not in required and isinstance(prop, dict):
            props[name] = _nullable(prop)
    node["required"] = list(props)


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    kind = prop.get("type")
    if isinstance(kind, str):
        return {**prop, "type": [kind, "null"]}
    if isinstance(kind, list):
        return {**prop, "type": [*kind, "null"]} if "null" not in kind else prop
    return {"anyOf": [prop, {"type": "null"}]}


def drop_added_nulls(text: str, original: dict[str, Any]) -> str:
    """Remove nulls that strict mode made the model write for properties the original schema left optional."""
    if not _memo(("optional",), original, lambda: _has_optional(original)):
        return text  # strict mode added no nullable property: nothing to remove
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    cleaned = _drop(value, original)
    return text if cleaned is value else orjson.dumps(cleaned).decode()


def _drop(value: Any, schema: Any) -> Any:
    if not isinstance(schema, dict):
        return value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = [_drop(v, schema["items"]) for v in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if not isinstance(value, dict):
        return value
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    out = {
        key: _drop(v, props.get(key))
        for key, v in value.items()
        if not (v is None and key in props and key not in required and not _allows_null(props[key]))
    }
    changed = len(out) != len(value) or any(out[k] is not value[k] for k in out)
    return out if changed else value


def _has_optional(schema: Any) -> bool:
    """Whether any object in `schema` has a property it does not require (strict mode makes it nullable)."""
    if not isinstance(schema, dict):
        return False
    props = schema.get("properties") or {}
    if set(props) - set(schema.get("required") or []):
        return True
    children = [*props.values(), schema.get("items"), *(schema.get("prefixItems") or [])]
    return any(_has_optional(child) for child in children)


def _allows_null(prop: Any) -> bool:
    if not isinstance(prop, dict):
        return True
    kind = prop.get("type")
    return kind == "null" or (isinstance(kind, list) and "null" in kind) or kind is None


def check(schema: Any, dialect: SchemaDialect, where: str = "schema") -> list[str]:
    """What `dialect` refuses in `schema`, as messages naming the path (empty when it is accepted)."""
    if dialect == "json-schema" or not isinstance(schema, dict):
        return []
    problems = [f"{where}: '{key}' is not supported" for key in schema if key not in ALLOWED[dialect]]
    strict_objects = dialect in ("openai-strict", "anthropic") and _is_object(schema)
    if strict_objects and schema.get("additionalProperties") is not False:
        problems.append(f"{where}: 'additionalProperties' must be false")
    if dialect == "openai-strict" and _is_object(schema):
        missing = sorted(set(schema.get("properties") or {}) - set(schema.get("required") or []))
        if missing:
            problems.append(f"{where}: 'required' must list every property (missing {', '.join(missing)})")
    if dialect == "anthropic" and isinstance(schema.get("minItems"), int) and schema["minItems"] > 1:
        problems.append(f"{where}: 'minItems' above 1 is not supported")
    for key in _CHILD_MAPS:
        for name, child in (schema.get(key) or {}).items() if isinstance(schema.get(key), dict) else ():
            problems += check(child, dialect, f"{where}.{key}.{name}")
    for key in _CHILD_LISTS:
        for i, child in enumerate(schema.get(key) or []) if isinstance(schema.get(key), list) else ():
            problems += check(child, dialect, f"{where}.{key}[{i}]")
    if isinstance(schema.get("items"), dict):
        problems += check(schema["items"], dialect, f"{where}.items")
    return problems
