"""The shape of a recipe file, as pydantic models: what keys exist, what they hold, what is a mistake.

These models only describe the YAML; behaviour (rendering, parsing, columns) lives in `step.py` and
`recipe.py`. Every model forbids unknown keys, so a typo such as `requirments:` is reported with its line
instead of being silently ignored.

A single-step recipe may be written flat, with the step's sections at the top level; `normalise` turns it
into the `steps:` form and remembers that it did, so error locations can be mapped back to the file.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ParamType = Literal["str", "int", "float", "bool", "list", "map"]

RECIPE_KEYS = frozenset(
    {"name", "version", "description", "params", "defaults", "allowed", "glossary", "local_model", "steps"}
)


class ParamSpec(BaseModel):
    """A declared parameter: `locales: {type: list, default: [de, fr], help: ...}`."""

    model_config = ConfigDict(extra="forbid")
    type: ParamType = "str"
    default: Any = None
    required: bool = False
    help: str = ""
    choices: list[str] | None = None


class RuleSpec(BaseModel):
    """A conditional requirement: its `text` joins the requirements when `when` is true for the row."""

    model_config = ConfigDict(extra="forbid")
    when: str
    text: str


class ExampleSpec(BaseModel):
    """A few-shot example: product data in, the answer out; `when` limits it to matching rows."""

    model_config = ConfigDict(extra="forbid")
    input: dict[str, Any]
    output: dict[str, Any]
    when: str | None = None


class OutputSpec(BaseModel):
    """Either a JSON Schema (`schema:`) or the field-list shorthand (`fields:` + optional `required:`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    fields: dict[str, str | dict[str, Any]] | None = None
    required: list[str] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> OutputSpec:
        if (self.schema_ is None) == (self.fields is None):
            raise ValueError("give exactly one of 'schema' (a JSON Schema) or 'fields' (the shorthand)")
        if self.schema_ is not None and self.required is not None:
            raise ValueError("'required' belongs to the 'fields' shorthand; put it inside 'schema' instead")
        return self


class InputSpec(BaseModel):
    """The product data shown to the model, as a JSON object inside the data delimiters.

    `fields` lists required row fields or is a Jinja expression such as `targets`; `optional` lists fields
    left out when empty (a `?` suffix in `fields` means the same); `with` is an expression giving a mapping
    that fills fields the row leaves empty (e.g. `outputs.attributes`); `max_chars` shortens long values so
    one product cannot flood the prompt; `opencc` converts Chinese text (Traditional to Simplified, ...).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    fields: list[str] | str
    optional: list[str] = Field(default_factory=list)
    with_: str | None = Field(None, alias="with")
    max_chars: int | None = Field(None, gt=0)
    opencc: str | None = Field(
        None,
        description="an expression giving an OpenCC configuration (t2s, tw2sp, s2t ...) that converts the "
        "Chinese of the data before the model sees it, or none (see skuforge.recipes.chinese)",
    )


class TargetsSpec(BaseModel):
    """Per-row output keys: the fields of `from` that are `missing` (attributes) or `present` (translate).

    The request's schema then asks for exactly those keys; a row with no target gets no request.
    `type` is the shorthand type of each key, or `same` to mirror the source value (text -> string,
    list -> list of strings). `allowed` is an expression giving `{field: [values]}`.

    `values: copied` (extraction) says every value is copied from the product data: the request carries
    the product texts (`Request.extract_from`) so a provider that can constrain decoding keeps each value
    to null, an allowed value or a run of words written in the data. `generated` (the default) lets the
    model write values of its own.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from")
    when: Literal["missing", "present", "all"] = "missing"
    type: str = "string|null"
    allowed: str | None = None
    values: Literal["copied", "generated"] = "generated"


class ColumnsSpec(BaseModel):
    """How outputs become export columns: `name` is a pattern over `{field}`, `{step}` and variant keys."""

    model_config = ConfigDict(extra="forbid")
    name: str = "{field}"
    fields: list[str] | None = None
    only_missing: bool = False


class StepSpec(BaseModel):
    """One model call per product (and per variant): its prompt sections, output, checks and columns."""

    model_config = ConfigDict(extra="forbid")
    name: str
    instruction: str
    input: InputSpec | str
    output: OutputSpec | None = None
    requirements: list[str] = Field(default_factory=list)
    ask: str | None = Field(None, description="a short reminder of the task, placed after the product data")
    rules: list[RuleSpec] = Field(default_factory=list)
    examples: list[ExampleSpec] = Field(default_factory=list)
    checks: list[dict[str, Any]] = Field(default_factory=list)
    model: str | None = None
    pack: int = Field(1, ge=1)
    max_tokens: int | str = Field(
        512,
        description="the output budget: a number, or an expression sized from the source such as "
        "'[24 + 2 * data_tokens, 600] | min' (data_tokens/data_chars: the size of the product data block)",
    )
    targets: TargetsSpec | None = None
    variants: dict[str, str] = Field(default_factory=dict)
    columns: ColumnsSpec = Field(default_factory=ColumnsSpec)
    requires: list[str] | str = Field(default_factory=list)
    skip_when: str | None = None

    @model_validator(mode="after")
    def _has_output(self) -> StepSpec:
        if self.output is None and self.targets is None:
            raise ValueError("a step needs an 'output' section (or 'targets' for per-row output keys)")
        return self

    @field_validator("max_tokens")
    @classmethod
    def _budget_positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value <= 0:
            raise ValueError(f"max_tokens must be a positive number or an expression, got {value}")
        return value

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(
                f"step name '{value}' must be letters, digits and '_' (it is used as outputs.<name>)"
            )
        return value

    @field_validator("checks")
    @classmethod
    def _checks_named(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for spec in value:
            if "check" not in spec:
                raise ValueError(f"a check needs a 'check:' name, got {spec}")
        return value


class RecipeSpec(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")
    name: str
    version: str
    description: str = ""
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)
    allowed: dict[str, list[str]] = Field(default_factory=dict)
    glossary: list[str] = Field(default_factory=list)
    local_model: str | None = Field(
        None,
        description="the packaged local model this recipe is measured best with; a run that names no model "
        "(and whose config sets none) uses it when it is installed",
    )
    steps: list[StepSpec] = Field(min_length=1)

    @field_validator("local_model")
    @classmethod
    def _known_local_model(cls, value: str | None) -> str | None:
        from skuforge.providers.local_models import KNOWN_MODELS

        if value is not None and value not in KNOWN_MODELS:
            known = ", ".join(KNOWN_MODELS)
            raise ValueError(f"local_model '{value}' is not a packaged model (known: {known})")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _unique_steps(self) -> RecipeSpec:
        names = [step.name for step in self.steps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"step names must be unique; repeated: {', '.join(dupes)}")
        return self


def normalise(data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Return the `steps:` form of a recipe mapping and whether it was written flat."""
    if "steps" in data:
        return data, False
    top = {k: v for k, v in data.items() if k in RECIPE_KEYS}
    step = {k: v for k, v in data.items() if k not in RECIPE_KEYS}
    step.setdefault("name", data.get("name", "main"))
    return {**top, "steps": [step]}, True


_BASE_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "str": {"type": "string"},
    "integer": {"type": "integer"},
    "int": {"type": "integer"},
    "number": {"type": "number"},
    "float": {"type": "number"},
    "boolean": {"type": "boolean"},
    "bool": {"type": "boolean"},
    "object": {"type": "object"},
}


def shorthand_type(text: str) -> dict[str, Any]:
    """Compile `string`, `list[string]`, `string|null`, `int?` ... to JSON Schema; ValueError if unknown."""
    text = text.strip()
    nullable = False
    if text.endswith("?"):
        text, nullable = text[:-1].strip(), True
    parts = [p.strip() for p in text.split("|")]
    if "null" in parts:
        parts.remove("null")
        nullable = True
    if len(parts) != 1:
        raise ValueError(f"type '{text}' must be one type, optionally '|null'")
    base = parts[0]
    match = re.fullmatch(r"(?:list|array)\[(.+)\]", base)
    if match:
        schema: dict[str, Any] = {"type": "array", "items": shorthand_type(match.group(1))}
    elif base in _BASE_TYPES:
        schema = dict(_BASE_TYPES[base])
    else:
        known = "string, integer, number, boolean, object, list[T], T|null"
        raise ValueError(f"unknown type '{base}' (known: {known})")
    if nullable:
        schema = {**schema, "type": [schema["type"], "null"]}
    return schema


def compile_output(output: OutputSpec) -> dict[str, Any]:
    """The JSON Schema of an output section; the shorthand forbids extra keys."""
    if output.schema_ is not None:
        return output.schema_
    fields = output.fields or {}
    props = {name: shorthand_type(t) if isinstance(t, str) else t for name, t in fields.items()}
    required = list(fields) if output.required is None else list(output.required)
    unknown = [r for r in required if r not in fields]
    if unknown:
        raise ValueError(f"'required' names fields that are not listed: {', '.join(unknown)}")
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def all_keys() -> list[str]:
    """Every key a recipe may use, for did-you-mean suggestions."""
    keys: set[str] = set()
    for model in (
        RecipeSpec,
        StepSpec,
        ParamSpec,
        RuleSpec,
        ExampleSpec,
        OutputSpec,
        InputSpec,
        TargetsSpec,
        ColumnsSpec,
    ):
        for name, info in model.model_fields.items():
            keys.add(info.alias or name)
    return sorted(keys)
