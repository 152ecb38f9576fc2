"""A reviewer's edit: read it (JSON, or plain text for a one-field output), validate it, check it.

An edit goes through the same gates as a model answer: `Step.parse` against the recipe's output schema,
a check that it adds no field the step does not output (`check_fields`), then the step's checks. A failing
'fail' check rejects the edit with its reason; 'flag' findings are kept on the item and reported, because a
human has just looked at it and chose this text.

What a reviewer may type in 'Edited output':
- for a one-field output (a title), the new text itself; for a list field, one item per line;
- otherwise a JSON object; keys it leaves out keep their current value, so `{"title": "..."}` changes
  only the title.
"""

from __future__ import annotations

import json
import re
from typing import Any

from skuforge.checks.base import CheckItem, Finding, build, findings_now, verdict
from skuforge.errors import OutputError, UserError
from skuforge.recipes import Step

_BULLET = re.compile(r"^\s*(?:[-*•·]|\d+[.)])\s+")


class EditRejected(UserError):
    """The edited output breaks the recipe's schema or one of its 'fail' checks."""


def _where(step: Step, row_id: str) -> str:
    return f"row '{row_id}', step '{step.name}'"


def single_field(step: Step) -> tuple[str, dict[str, Any]] | None:
    """The one output field of a step whose output is an object with exactly one property."""
    props = step.output_schema.get("properties") or {}
    if len(props) == 1 and not step.output_schema.get("additionalProperties"):
        name, schema = next(iter(props.items()))
        return name, schema
    return None


def _accepts(schema: dict[str, Any], kind: str) -> bool:
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if kind in kinds:
        return True
    return any(_accepts(sub, kind) for sub in schema.get("anyOf", []) + schema.get("oneOf", []))


def _plain_value(text: str, schema: dict[str, Any]) -> Any:
    """Plain text typed for one field, as that field's type: lines for a list, the text for a string."""
    if _accepts(schema, "array") and not _accepts(schema, "string"):
        return [_BULLET.sub("", line).strip() for line in text.splitlines() if line.strip()]
    if _accepts(schema, "string"):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _as_text(edited: Any) -> str:
    if isinstance(edited, str):
        text = edited.strip()
        if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@"):
            text = text[1:]  # the quote our export put before formula-like text
        return text
    return json.dumps(edited, ensure_ascii=False)


def parse_edit(step: Step, row_id: str, current: Any, edited: Any) -> Any:
    """The edited output, validated against the step's schema; EditRejected says what is wrong."""
    text = _as_text(edited)
    if not text:
        raise EditRejected(
            f"The edit of {_where(step, row_id)} is empty.",
            "Type the new output in 'Edited output', or choose approve or reject instead of edit.",
        )
    one = single_field(step)
    value: Any
    if text.startswith(("{", "[")):
        try:
            value = json.loads(text)
        except ValueError as exc:
            if one is None:
                raise EditRejected(
                    f"The edit of {_where(step, row_id)} is not valid JSON: {exc}.",
                    'Check the quotes and commas, e.g. {"title": "New title"}.',
                ) from exc
            value = {one[0]: _plain_value(text, one[1])}
        else:
            if one is not None and not isinstance(value, dict):
                value = {one[0]: value}
    elif one is not None:
        value = {one[0]: _plain_value(text, one[1])}
    else:
        fields = ", ".join(f'"{k}"' for k in (step.output_schema.get("properties") or {}))
        raise EditRejected(
            f"The edit of {_where(step, row_id)} must be a JSON object (the output has several fields).",
            f'Write e.g. {{{fields.split(", ")[0] if fields else "field"}: "new text"}}; keys you leave out '
            "keep their current value." + (f" Fields: {fields}." if fields else ""),
        )
    if isinstance(value, dict) and isinstance(current, dict):
        value = {**current, **value}
    try:
        return step.parse(json.dumps(value, ensure_ascii=False))
    except OutputError as exc:
        raise EditRejected(
            f"The edit of {_where(step, row_id)} was not applied: {exc.message}",
            "Fix the value in 'Edited output' so it matches the recipe's output fields and types.",
        ) from exc


def check_fields(step: Step, params: dict[str, Any], row_id: str, current: Any, edited: Any) -> None:
    """Refuse an edit that adds a field the step does not output.

    The JSON Schema alone does not catch it for every step: a per-row targets step (attributes) accepts
    any key, and a hand-written `schema:` may not forbid extra ones. The fields a step outputs are its
    targets universe (e.g. `params.attributes`) or its schema's properties, plus what the item already has.
    """
    if not isinstance(edited, dict):
        return
    allowed = output_fields(step, params)
    if allowed is None:
        return
    known = allowed | set(current if isinstance(current, dict) else {})
    unknown = [name for name in edited if name not in known]
    if unknown:
        names = ", ".join(f"'{name}'" for name in unknown)
        raise EditRejected(
            f"The edit of {_where(step, row_id)} was not applied: {names} "
            f"{'is not a field' if len(unknown) == 1 else 'are not fields'} of the step's output.",
            f"The step outputs: {', '.join(repr(f) for f in sorted(known))}. Remove the other fields.",
        )


def output_fields(step: Step, params: dict[str, Any]) -> set[str] | None:
    """The fields a step may output, or None when its schema leaves them open (no properties listed)."""
    if step.spec.targets is not None or step.spec.columns.fields is not None:
        return set(step._column_universe(params))  # the targets universe, resolved with the job's params
    props = step.output_schema.get("properties")
    return set(props) if props else None


def check_edit(
    step: Step,
    params: dict[str, Any],
    row: dict[str, Any],
    variant: dict[str, Any],
    output: Any,
    *,
    recipe: str,
    row_id: str,
) -> tuple[str, list[Finding]]:
    """Run the step's checks on an edit: ('done' | 'flagged', findings), or EditRejected for a 'fail'."""
    item = CheckItem(
        row=row,
        output=output,
        recipe=recipe,
        step=step.name,
        locale=variant.get("locale"),
        schema=step.output_schema,
        row_id=row_id,
    )
    findings: list[Finding] = []
    for spec in step.checks_for(params):
        findings.extend(findings_now(build(spec), item))
    status = verdict(findings)
    if status == "failed":
        reasons = "; ".join(f.reason for f in findings if not f.ok and f.action == "fail")
        raise EditRejected(
            f"The edit of {_where(step, row_id)} fails the recipe's checks: {reasons}",
            "Change the edited text so it passes, or reject the item instead.",
        )
    return status, findings
