"""The `schema` check: the output matches the step's JSON Schema and no required field is empty.

JSON Schema alone accepts `""` and `[]` for a required field; a merchandiser does not, so required fields are
also checked for content. Reasons name the field by its path (`selling_points[2]`).
"""

from __future__ import annotations

from typing import Any

from skuforge.checks.base import CheckItem, CheckSpec, Finding, register
from skuforge.checks.outputs import passed, problem


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the output"


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict) and not value


def _empty_required(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Paths of required properties that are present but empty, through nested objects and arrays."""
    found: list[str] = []
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        for name in schema.get("required", []):
            if name in value and _empty(value[name]):
                found.append(f"{path}.{name}" if path else name)
        for name, sub in schema["properties"].items():
            if name in value and isinstance(sub, dict):
                found += _empty_required(sub, value[name], f"{path}.{name}" if path else name)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, sub in enumerate(value):
            found += _empty_required(schema["items"], sub, f"{path}[{i}]")
    return found


@register("schema")
class SchemaCheck:
    """Validate with jsonschema (the schema's own draft), then look for empty required values."""

    name = "schema"

    def __init__(self, spec: CheckSpec) -> None:
        self.spec = spec
        self.fallback = spec.params.get("schema")
        self.extra_required = list(spec.params.get("required", []))

    def __call__(self, item: CheckItem) -> list[Finding]:
        from skuforge.recipes.answer import schema_errors

        schema = item.schema_ or self.fallback
        findings: list[Finding] = []
        if schema:
            errors = [] if item.validated and item.schema_ is not None else schema_errors(item.output, schema)
            for error in sorted(errors, key=lambda e: list(e.path)):
                where = _path(error.absolute_path)
                findings.append(
                    problem(self.name, self.spec, f"Field '{where}' is not valid: {error.message}.", where)
                )
            findings += [
                problem(self.name, self.spec, f"Required field '{p}' is empty.", p)
                for p in _empty_required(schema, item.output)
            ]
        for name in self.extra_required:
            value = item.output.get(name) if isinstance(item.output, dict) else None
            if _empty(value):
                findings.append(
                    problem(self.name, self.spec, f"Required field '{name}' is missing or empty.", name)
                )
        return findings or passed(self.name, self.spec)
