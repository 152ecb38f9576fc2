"""The model's answer: find the JSON object in it, check it against the schema, and describe the schema.

Small models wrap JSON in ```json fences or put a sentence before it even in JSON mode, so parsing takes the
first JSON object in the text. Schema errors are reported by path ("selling_points[3]: ... is too long"), in
words the repair turn can quote back to the model.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from typing import Any

import orjson

from skuforge.errors import OutputError

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


def extract_json(text: str) -> Any:
    """The first JSON object in `text`: the whole text, a fenced block, or an object after some prose."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    for block in _FENCE.findall(stripped):
        try:
            return json.loads(block.strip())
        except ValueError:
            continue
    start = stripped.find("{")
    while start != -1:
        try:
            value, _ = _DECODER.raw_decode(stripped, start)
            return value
        except ValueError:
            start = stripped.find("{", start + 1)
    raise ValueError("no JSON object found in the answer")


def check_schema(schema: dict[str, Any]) -> str | None:
    """None when `schema` is a valid JSON Schema, else the reason (in the pure-Python jsonschema's words,
    which is imported only then: a run whose schemas and answers are valid never loads it, about 30 ms)."""
    fast = _fast_module()
    try:
        if fast is not None and fast.meta.is_valid(schema):
            return None
    except Exception:  # a draft jsonschema-rs does not know: the pure-Python check decides
        pass
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return exc.message
    return None


def _fast_module() -> Any:
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs


def _path(error: Any) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the answer"


class _Compiled:
    """One schema's validators: jsonschema-rs answers "valid?" in about a microsecond; the pure-Python
    jsonschema (the schema's own draft) explains what is wrong, on the rare invalid answer."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.full: Any = None  # built on the first answer jsonschema-rs finds invalid (or cannot judge)
        fast = _fast_module()
        try:
            self.fast: Any = fast.validator_for(schema) if fast is not None else None
        except Exception:  # not installed, or a schema it does not take: the full validator decides
            self.fast = None

    def errors(self, value: Any) -> list[Any]:
        if self.fast is not None and self.fast.is_valid(value):
            return []
        if self.full is None:
            from jsonschema import Draft202012Validator, validators

            self.full = validators.validator_for(self.schema, default=Draft202012Validator)(self.schema)
        return list(self.full.iter_errors(value))


_COMPILED: OrderedDict[bytes, _Compiled] = OrderedDict()
_BY_ID: dict[int, _Compiled] = {}
_MAX_COMPILED = 512


def _compiled(schema: dict[str, Any]) -> _Compiled:
    """The validators of `schema`, built once: a step's schema is the same object for every row; a per-row
    schema (the attributes a row lacks) is found by its canonical JSON among the recently used ones."""
    found = _BY_ID.get(id(schema))
    if found is not None and found.schema is schema:
        return found
    key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    found = _COMPILED.get(key)
    if found is None:
        found = _COMPILED[key] = _Compiled(schema)
        if len(_COMPILED) > _MAX_COMPILED:
            _COMPILED.popitem(last=False)
            _BY_ID.clear()
    else:
        _COMPILED.move_to_end(key)
    _BY_ID[id(schema)] = found
    return found


def schema_errors(value: Any, schema: dict[str, Any]) -> list[Any]:
    """The jsonschema errors of `value` against `schema` ([] when it is valid)."""
    return _compiled(schema).errors(value)


def validate(value: Any, schema: dict[str, Any], *, step: str, raw: str) -> Any:
    """Return `value` when it matches `schema`; else an OutputError that says where and why."""
    errors = schema_errors(value, schema)
    if not errors:
        return value
    from jsonschema.exceptions import best_match

    error = best_match(errors)
    raise OutputError(
        f"Output of step '{step}' does not match its schema: {_path(error)}: {error.message}.",
        "The item gets one repair attempt; if it keeps failing, simplify the output schema or use a larger "
        "model.",
        raw=raw,
    )


def parse_answer(text: str, schema: dict[str, Any], *, step: str) -> Any:
    """Parse and validate one answer; OutputError(raw=text) when it is not JSON or not schema-valid."""
    try:
        value = extract_json(text)
    except ValueError as exc:
        shown = text.strip()[:200] or "(empty)"
        raise OutputError(
            f"Output of step '{step}' is not JSON: {exc}. The answer began: {shown!r}",
            "The item gets one repair attempt; a provider with JSON mode avoids this.",
            raw=text,
        ) from exc
    return validate(value, schema, step=step, raw=text)


def _type_words(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        values = [json.dumps(v, ensure_ascii=False) for v in schema["enum"]]
        return "one of " + ", ".join(values)
    kinds = schema.get("type", "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    words = []
    for kind in kinds:
        if kind == "array":
            items = schema.get("items") or {}
            word = f"list of {_type_words(items)}"
            low, high = schema.get("minItems"), schema.get("maxItems")
            if low is not None and low == high:
                word += f" (exactly {low} items)"
            elif low is not None or high is not None:
                word += f" ({low or 0} to {high if high is not None else 'any'} items)"
            words.append(word)
        elif kind == "object" and "properties" in schema:
            inner = ", ".join(f'"{k}": {_type_words(v)}' for k, v in schema["properties"].items())
            words.append("{" + inner + "}")
        else:
            words.append(str(kind))
    return " or ".join(words)


def describe(schema: dict[str, Any]) -> str:
    """A short text form of an object schema for the prompt: one line per key."""
    props = schema.get("properties")
    if not props:
        return f"One JSON object: {_type_words(schema)}."
    lines = ["Answer with one JSON object with exactly these keys:"]
    lines += [f'- "{name}": {_type_words(sub)}' for name, sub in props.items()]
    return "\n".join(lines)
