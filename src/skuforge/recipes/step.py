"""A recipe step: turns one product (and one variant, e.g. a target locale) into a model request, and the
model's answer into parsed output and export columns.

Templates are compiled once when the recipe loads; rendering happens per row in the sandbox. Every failure
names the recipe, the step, the section and its place in the YAML file, and, for a missing field, the row.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import string
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from jinja2 import Template, TemplateSyntaxError, meta
from jinja2.utils import missing

from skuforge.checks.base import CATALOG_NOTE, CheckSpec, Finding
from skuforge.errors import MissingFieldError, RecipeError, SkuforgeError
from skuforge.providers.base import Message, Request
from skuforge.providers.tokens import estimate_tokens
from skuforge.recipes import chinese, prompt
from skuforge.recipes.answer import parse_answer
from skuforge.recipes.sandbox import (
    STRICT,
    TEMPLATE_ERRORS,
    MissingName,
    SecurityError,
    compile_expression,
    compile_template,
    dumps,
    evaluate,
    recording_sources,
    render,
)
from skuforge.recipes.spec import InputSpec, StepSpec, compile_output

if TYPE_CHECKING:  # the pool needs numpy, which only the local and knowledge extras bring
    from skuforge.knowledge.catalog_examples import ExamplePool

SIMILAR_PER_ROW = 1
"""Of an extraction step's `examples` from the catalog, how many are picked per row (the most similar
filled rows); the others stand for the row's category and are the same for all its rows, so they stay in
the provider's cached prefix and cost nothing after the category's first rows (see README, "What to expect
from the local model", for the measured effect)."""
RESERVED = frozenset({"row", "outputs", "params", "locale", "variant", "recipe", "step", "targets"})
MAX_REPAIR_QUOTE = 4000


@dataclass
class RecipeContext:
    """What a step knows about its recipe: identity, defaults and the `recipe` template variable."""

    name: str
    version: str
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    allowed: dict[str, list[str]] = field(default_factory=dict)
    glossary: list[str] = field(default_factory=list)
    default_params: dict[str, Any] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)

    def as_template_value(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "allowed": self.allowed,
            "glossary": self.glossary,
        }


class Step:
    """One step of a recipe. See the module docstring of `skuforge.recipes` for the YAML it comes from."""

    def __init__(self, spec: StepSpec, recipe: RecipeContext) -> None:
        self.spec, self.recipe = spec, recipe
        self.name = spec.name
        self.model = spec.model
        self.pack = spec.pack
        self.max_tokens = spec.max_tokens if isinstance(spec.max_tokens, int) else None  # None: per row
        self.pool: ExamplePool | None = None  # examples from the catalog's filled rows (Recipe.prepare)
        if spec.output is not None:
            self.output_schema = compile_output(spec.output)
        else:
            self.output_schema = prompt.static_target_schema(spec.targets.type)  # type: ignore[union-attr]
        self._compile()
        self.checks: list[CheckSpec] = self.checks_for(recipe.default_params)

    def _compile(self) -> None:
        spec = self.spec
        self._static: dict[int, bool] = {}  # id(template) -> renders the same for every row
        self._renders: dict[tuple[int, bytes], str] = {}  # static renders, by template and variant/params
        self._instruction = compile_template(spec.instruction)
        self._requirements = [compile_template(r) for r in spec.requirements]
        self._ask = compile_template(spec.ask) if spec.ask else None
        self._rules = [
            (compile_expression(r.when, lenient=True), compile_template(r.text)) for r in spec.rules
        ]
        self._examples = [
            (compile_expression(e.when, lenient=True) if e.when else None, e.input, e.output)
            for e in spec.examples
        ]
        self._input_template = compile_template(spec.input) if isinstance(spec.input, str) else None
        inp = spec.input if isinstance(spec.input, InputSpec) else None
        self._input_fields = compile_expression(inp.fields) if inp and isinstance(inp.fields, str) else None
        self._input_with = compile_expression(inp.with_) if inp and inp.with_ else None
        self._opencc = compile_expression(inp.opencc) if inp and inp.opencc else None
        self._skip_when = compile_expression(spec.skip_when, lenient=True) if spec.skip_when else None
        self._variants = {key: compile_expression(expr) for key, expr in spec.variants.items()}
        self._requires = compile_expression(spec.requires) if isinstance(spec.requires, str) else None
        budget = spec.max_tokens
        self._max_tokens = compile_expression(budget) if isinstance(budget, str) else None
        targets = spec.targets
        self._targets_from = compile_expression(targets.from_) if targets else None
        self._targets_allowed = compile_expression(targets.allowed) if targets and targets.allowed else None
        sections = [(spec.instruction, self._instruction)]
        sections += list(zip(spec.requirements, self._requirements, strict=True))
        sections += [(spec.ask, self._ask)] if spec.ask and self._ask is not None else []
        for source, template in sections:
            self._static[id(template)] = _row_reads([source], set(spec.variants)) == ()
        # the system prompt's sections together: what of the row they read, when that is a few fields
        rule_sources = [f"{{{{ {r.when} }}}}" for r in spec.rules] + [r.text for r in spec.rules]
        read = [spec.instruction, *spec.requirements, *rule_sources]
        self._instruction_reads = _row_reads(read, set(spec.variants))
        self._instruction_memo: dict[bytes, tuple[str, list[str]]] = {}
        self._example_memo: dict[tuple[tuple[int, ...], str, bool], list[Message]] = {}

    def __repr__(self) -> str:
        return f"Step({self.recipe.name}.{self.name})"

    # -- errors -----------------------------------------------------------------------------------------

    def _where(self, section: str) -> str:
        place = self.recipe.where.get(f"{self.name}.{section}")
        return f"Recipe '{self.recipe.name}', step '{self.name}', {section}" + (
            f" ({place})" if place else ""
        )

    @contextmanager
    def _guard(self, section: str, ctx: dict[str, Any], row_label: str | None = None) -> Iterator[None]:
        """Turn whatever a template raises into a RecipeError (or MissingFieldError) that says where."""
        try:
            yield
        except MissingName as exc:
            raise self._missing(exc, section, ctx, row_label) from exc
        except SecurityError as exc:
            raise RecipeError(
                f"{self._where(section)}: the template was stopped by the sandbox: {exc}.",
                "Templates may use the row's fields, row, outputs, params, locale, recipe and Jinja filters; "
                "Python attributes ('_' names), unbounded loops and huge outputs are not allowed.",
            ) from exc
        except RecipeError:
            raise
        except SkuforgeError as exc:  # e.g. knowledge('kb') naming a knowledge base that does not exist
            raise RecipeError(f"{self._where(section)}: {exc.message}", exc.hint) from exc
        except TEMPLATE_ERRORS as exc:
            raise RecipeError(
                f"{self._where(section)}: the template failed: {type(exc).__name__}: {exc}.",
                "Fix the template in the recipe file; `skuforge recipes validate FILE` checks its syntax.",
            ) from exc

    def _missing(self, exc: MissingName, section: str, ctx: dict[str, Any], row: str | None) -> RecipeError:
        name, obj = exc.name or "?", exc.obj
        outputs = ctx.get("outputs")
        if row is not None and (obj is missing or obj is ctx.get("row")):
            return MissingFieldError(self.recipe.name, name, row)
        if (
            row is not None
            and outputs is not None
            and (obj is outputs or any(obj is v for v in outputs.values()))
        ):
            return MissingFieldError(self.recipe.name, f"outputs.{name}", row)
        if obj is ctx.get("params"):
            return RecipeError(
                f"{self._where(section)} uses params.{name}, which the recipe does not declare.",
                f"Declare it under 'params:' (known: {', '.join(sorted(ctx['params'])) or 'none'}).",
            )
        return RecipeError(f"{self._where(section)}: {exc}.", "Fix the template in the recipe file.")

    # -- contexts ----------------------------------------------------------------------------------------

    def _param_context(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"params": params, "recipe": self.recipe.as_template_value(), "step": self.name}

    def _row_context(
        self, row: dict[str, Any], outputs: dict[str, Any], variant: dict[str, Any], params: dict[str, Any]
    ) -> dict[str, Any]:
        filled = prompt.fill_row(row, self.recipe.defaults)
        ctx: dict[str, Any] = dict(filled)
        ctx.update(variant)
        ctx.update(self._param_context(params))
        ctx.update(row=filled, outputs=outputs, variant=variant, locale=variant.get("locale"), targets=None)
        return ctx

    # -- variants, checks, columns ---------------------------------------------------------------------

    def variants(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """One dict per variant of each product: `[{}]` normally, `[{"locale": "de"}, ...]` for locales."""
        ctx = self._param_context(params)
        axes = []
        for key, expr in self._variants.items():
            with self._guard(f"variants.{key}", ctx):
                values = evaluate(expr, ctx)
            values = [values] if isinstance(values, str) else list(values or [])
            if values:
                axes.append([(key, v) for v in values])
        return [dict(combo) for combo in itertools.product(*axes)]

    def checks_for(self, params: dict[str, Any]) -> list[CheckSpec]:
        """The step's check specs with `{{ params.x }}` values rendered (e.g. a length from `max_chars`).

        A value that is one `{{ expression }}` keeps the expression's type, so a check can be given a list
        (`terms: "{{ recipe.glossary + params.glossary }}"`); text is rendered as before."""
        ctx = self._param_context(params)
        out = []
        for raw in self.spec.checks:
            spec = {}
            for key, value in raw.items():
                if isinstance(value, str) and "{{" in value:
                    with self._guard(f"checks.{raw.get('check')}", ctx):
                        value = _check_value(value, ctx)
                spec[key] = value
            out.append(CheckSpec.model_validate(spec))
        return out

    def _column_universe(self, params: dict[str, Any]) -> list[str]:
        if self.spec.columns.fields is not None:
            return list(self.spec.columns.fields)
        if self._targets_from is not None:
            ctx = self._param_context(params)
            with self._guard("targets.from", ctx):
                return [str(f) for f in evaluate(self._targets_from, ctx) or []]
        return list(self.output_schema.get("properties", {}))

    def column_name(self, field_name: str, variant: dict[str, Any]) -> str:
        """The export column of one output field: the `columns.name` pattern, plus `@value` for variant
        keys the pattern does not mention (so `selling_points` in German becomes `selling_points@de`)."""
        pattern = self.spec.columns.name
        used = {name for _, name, _, _ in string.Formatter().parse(pattern) if name}
        values = _Blank(field=field_name, step=self.name, **{k: str(v) for k, v in variant.items()})
        name = pattern.format_map(values).rstrip("@_-")
        for key in sorted(variant):
            if key not in used:
                name += f"@{variant[key]}"
        return name

    def column_names(self, params: dict[str, Any]) -> list[str]:
        """The generated columns, in order, for the export header."""
        names: list[str] = []
        for variant in self.variants(params):
            for field_name in self._column_universe(params):
                column = self.column_name(field_name, variant)
                if column not in names:
                    names.append(column)
        return names

    def columns(self, row: dict[str, Any], output: Any, variant: dict[str, Any]) -> dict[str, Any]:
        """Flat export columns from one parsed output; with `only_missing`, never a value the row has."""
        if not isinstance(output, dict):
            return {}
        fields = self.spec.columns.fields if self.spec.columns.fields is not None else list(output)
        out: dict[str, Any] = {}
        for name in fields:
            value = output.get(name)
            if prompt.is_empty(value):
                continue
            if self.spec.columns.only_missing and not prompt.is_empty(row.get(name)):
                continue
            out[self.column_name(name, variant)] = value
        return out

    # -- required columns ------------------------------------------------------------------------------

    def required_columns(self, params: dict[str, Any]) -> set[str]:
        """Columns the catalog must have for this step: required input fields, `requires`, and row fields
        that templates name directly (those fail for every row when the column is absent)."""
        cols: set[str] = set()
        inp = self.spec.input
        if isinstance(inp, InputSpec) and isinstance(inp.fields, list):
            cols |= {f for f in inp.fields if not f.endswith("?")}
        if self._requires is not None:
            ctx = self._param_context(params)
            with self._guard("requires", ctx):
                cols |= {str(c) for c in evaluate(self._requires, ctx) or []}
        elif isinstance(self.spec.requires, list):
            cols |= set(self.spec.requires)
        cols |= self._template_names()
        return cols - set(self.recipe.defaults)

    def _template_names(self) -> set[str]:
        sources = [self.spec.instruction, *self.spec.requirements, *(r.text for r in self.spec.rules)]
        sources += [self.spec.ask] if self.spec.ask else []
        if isinstance(self.spec.input, str):
            sources.append(self.spec.input)
        names: set[str] = set()
        for source in sources:
            names |= meta.find_undeclared_variables(STRICT.parse(source))
        return names - RESERVED - set(self.spec.variants) - set(STRICT.globals)

    # -- requests --------------------------------------------------------------------------------------

    def build_request(
        self,
        row: dict[str, Any],
        outputs: dict[str, Any],
        variant: dict[str, Any],
        params: dict[str, Any],
        *,
        row_label: str,
    ) -> Request | None:
        """The request for one product and variant, or None when there is nothing to generate for it.

        Knowledge passages and examples the templates retrieve are listed in the request's `sources`."""
        with recording_sources() as used:
            request = self._build_request(row, outputs, variant, params, row_label=row_label)
        if request is not None and used:
            request.sources = used
        return request

    def _build_request(
        self,
        row: dict[str, Any],
        outputs: dict[str, Any],
        variant: dict[str, Any],
        params: dict[str, Any],
        *,
        row_label: str,
    ) -> Request | None:
        ctx = self._row_context(row, outputs or {}, variant, params)
        if self._skip_when is not None:
            with self._guard("skip_when", ctx, row_label):
                if evaluate(self._skip_when, ctx):
                    return None
        source, extra = self._source(ctx, row_label)
        targets = self._targets(ctx, source, row_label)
        if targets is not None and not targets:
            return None
        ctx["targets"] = targets
        schema = self._request_schema(ctx, source, targets, row_label)
        ask = ""
        if self._ask is not None:
            with self._guard("ask", ctx, row_label):
                ask = self._render(self._ask, ctx).strip()
        described = self._described_schema(ctx, source, schema, row_label)
        data = self._data(ctx, source, extra, row_label)
        system = prompt.system_text(*self._instructions(ctx, row_label), described)
        examples, own = self._example_messages(ctx, targets, params, row_label, ask)
        messages = [  # built from checked values: constructed without re-validating them (per row, per step)
            Message.model_construct(role="system", content=system),
            *examples,
            Message.model_construct(
                role="user", content=prompt.row_text(data, ask, preamble=not self.copies_values)
            ),
        ]
        return Request.model_construct(
            messages=messages,
            json_schema=schema,
            json_mode=True,
            extract_from=prompt.copied_texts(data) if self.copies_values else None,
            max_tokens=self._budget(ctx, data, row_label),
            temperature=0.0,
            tag=f"{self.recipe.name}.{self.name}",
            shared_messages=1 + len(examples) - own,
        )

    def _budget(self, ctx: dict[str, Any], data: str, row_label: str) -> int:
        """The output budget: the step's number, or its expression over the size of the product data."""
        if self._max_tokens is None:
            return int(self.spec.max_tokens)
        sized = {**ctx, "data_chars": len(data), "data_tokens": estimate_tokens(data)}
        with self._guard("max_tokens", sized, row_label):
            value = evaluate(self._max_tokens, sized)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
            raise RecipeError(
                f"{self._where('max_tokens')}: the expression gave {value!r} for row {row_label}, not a "
                "positive number of tokens.",
                "Write an expression that gives a number, e.g. '[24 + 2 * data_tokens, 600] | min'.",
            )
        return max(1, round(value))

    def _described_schema(
        self, ctx: dict[str, Any], source: dict[str, Any], schema: dict[str, Any] | None, row_label: str
    ) -> dict[str, Any] | None:
        """The schema the system prompt describes. A step that asks for a row's *missing* fields describes
        all of its fields, so the system prompt is the same for every row (a prefix providers can cache);
        the row's own keys are in the request's schema and its `ask` line."""
        if self.spec.targets is None or self.spec.targets.when != "missing" or self._targets_from is None:
            return schema
        with self._guard("targets.from", ctx, row_label):
            universe = [str(f) for f in evaluate(self._targets_from, ctx) or []]
        if self.copies_values:
            described = self._request_schema(ctx, {}, universe, row_label)["properties"]
            allowed = {k: v["enum"] for k, v in described.items() if "enum" in v}
            offered = self.pool.closed if self.pool is not None else {}
            return {"description": prompt.copied_description(allowed, offered)}
        empty = {k: v for k, v in source.items() if k not in universe}
        return self._request_schema(ctx, empty, universe, row_label)

    def _render(self, template: Template, ctx: dict[str, Any]) -> str:
        """Render a section; one that reads nothing of the row is rendered once per variant and params."""
        if not self._static.get(id(template)):
            return render(template, ctx)
        key = (id(template), _variant_key(ctx["variant"], ctx["params"]))
        text = self._renders.get(key)
        if text is None:
            text = self._renders[key] = render(template, ctx)
        return text

    def _instructions(self, ctx: dict[str, Any], row_label: str) -> tuple[str, list[str]]:
        """The instruction and the requirements that apply to this row. When the sections read only a few
        of the row's fields (`Write a listing for this {{ category }} product`, a rule `when: category ==
        'Kitchen'`), they are rendered once per distinct value of those fields (with the variant and
        params) and reused: rendering them for every row was 8% of the event loop's time on the scale
        benchmark's realistic recipe."""
        reads = self._instruction_reads
        if reads is None:
            return self._render_instructions(ctx, row_label)
        values = [[name in ctx, ctx.get(name)] for name in reads]
        key = orjson.dumps([ctx["variant"], ctx["params"], values], option=orjson.OPT_SORT_KEYS, default=str)
        found = self._instruction_memo.get(key)
        if found is None:
            if len(self._instruction_memo) >= MEMO_SIZE:  # a field unique to each row: keep memory flat
                self._instruction_memo.clear()
            found = self._instruction_memo[key] = self._render_instructions(ctx, row_label)
        return found[0], list(found[1])

    def _render_instructions(self, ctx: dict[str, Any], row_label: str) -> tuple[str, list[str]]:
        with self._guard("instruction", ctx, row_label):
            instruction = self._render(self._instruction, ctx)
        requirements = []
        for i, template in enumerate(self._requirements):
            with self._guard(f"requirements[{i}]", ctx, row_label):
                requirements.append(self._render(template, ctx).strip())
        for i, (when, text) in enumerate(self._rules):
            with self._guard(f"rules[{i}]", ctx, row_label):
                if evaluate(when, ctx):
                    requirements.append(render(text, ctx).strip())
        return instruction, [r for r in requirements if r]

    def _source(self, ctx: dict[str, Any], row_label: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The row's fields, with `input.with` filling empty ones; also returns the `with` mapping."""
        source = dict(ctx["row"])
        extra: dict[str, Any] = {}
        if self._input_with is not None:
            with self._guard("input.with", ctx, row_label):
                extra = dict(evaluate(self._input_with, ctx) or {})
            for key, value in extra.items():
                if prompt.is_empty(source.get(key)) and not prompt.is_empty(value):
                    source[key] = value
        return source, extra

    def _targets(self, ctx: dict[str, Any], source: dict[str, Any], row_label: str) -> list[str] | None:
        targets = self.spec.targets
        if targets is None or self._targets_from is None:
            return None
        with self._guard("targets.from", ctx, row_label):
            universe = [str(f) for f in evaluate(self._targets_from, ctx) or []]
        if targets.when == "missing":
            missing = [f for f in universe if prompt.is_empty(source.get(f))]
            return self.pool.targets(source, missing) if self.pool is not None else missing
        if targets.when == "present":
            return [f for f in universe if not prompt.is_empty(source.get(f))]
        return universe

    def _request_schema(
        self, ctx: dict[str, Any], source: dict[str, Any], targets: list[str] | None, row_label: str
    ) -> dict[str, Any]:
        if targets is None or self.spec.targets is None:
            return self.output_schema
        allowed: dict[str, Any] = {}
        if self._targets_allowed is not None:
            with self._guard("targets.allowed", ctx, row_label):
                allowed = dict(evaluate(self._targets_allowed, ctx) or {})
        kind = self.spec.targets.type
        offered = self.pool.closed if self.pool is not None else {}
        props = {
            t: prompt.target_value_schema(kind, source.get(t), allowed.get(t), offered.get(t))
            for t in targets
        }
        return {
            "type": "object",
            "properties": props,
            "required": list(targets),
            "additionalProperties": False,
        }

    def _data(
        self, ctx: dict[str, Any], source: dict[str, Any], extra: dict[str, Any], row_label: str
    ) -> str:
        """The product data block: the rendered `input` template, or the listed fields as a JSON object."""
        if self._input_template is not None:
            with self._guard("input", ctx, row_label):
                return render(self._input_template, ctx).strip()
        inp = self.spec.input
        assert isinstance(inp, InputSpec)
        names = inp.fields
        if self._input_fields is not None:
            with self._guard("input.fields", ctx, row_label):
                names = [str(n) for n in evaluate(self._input_fields, ctx) or []]
        data: dict[str, Any] = {}
        for name in [*names, *(f"{o}?" for o in inp.optional)]:
            key, optional = (name[:-1], True) if name.endswith("?") else (name, False)
            value = source.get(key)
            if prompt.is_empty(value):
                if optional:
                    continue
                raise MissingFieldError(self.recipe.name, key, row_label)
            data[key] = prompt.shorten(value, inp.max_chars)
        for key, value in extra.items():
            if key not in data and not prompt.is_empty(value):
                data[key] = prompt.shorten(value, inp.max_chars)
        return dumps(self._converted(ctx, data, row_label))

    def _converted(self, ctx: dict[str, Any], data: dict[str, Any], row_label: str) -> dict[str, Any]:
        """The data with its Chinese converted by `input.opencc`; glossary terms stay as written."""
        if self._opencc is None:
            return data
        with self._guard("input.opencc", ctx, row_label):
            config = evaluate(self._opencc, ctx)
        if not config:
            return data
        if config not in chinese.CONFIGS:
            raise RecipeError(
                f"{self._where('input.opencc')}: '{config}' (row {row_label}) is not an OpenCC "
                "configuration.",
                f"Use one of: {', '.join(chinese.CONFIGS)}, or none to leave the data as it is.",
            )
        keep = [*self.recipe.glossary, *(ctx["params"].get("glossary") or [])]
        return {key: chinese.convert(value, str(config), keep) for key, value in data.items()}

    def _example_messages(
        self, ctx: dict[str, Any], targets: list[str] | None, params: dict[str, Any], row_label: str, ask: str
    ) -> tuple[list[Message], int]:
        """The example turns, and how many of the last ones were chosen for this row alone."""
        chosen, picked = [], []
        for i, (when, data, answer) in enumerate(self._examples):
            if when is not None:
                with self._guard(f"examples[{i}].when", ctx, row_label):
                    if not evaluate(when, ctx):
                        continue
            chosen.append((data, answer))
            picked.append(i)
        universe = self._column_universe(params) if targets is not None else []
        if targets is not None and self.spec.targets is not None and self.spec.targets.when == "missing":
            return self._extraction_examples(ctx, chosen, universe, targets, params)
        fill_null = self.spec.targets is None or self.spec.targets.when == "missing"
        if targets is not None:
            return prompt.example_turns(chosen, targets, universe, ask, fill_null), 0
        key = (tuple(picked), ask, fill_null)
        turns = self._example_memo.get(key)
        if turns is None:  # the same examples and ask line as an earlier row: the same turns
            if len(self._example_memo) >= MEMO_SIZE:
                self._example_memo.clear()
            turns = self._example_memo[key] = prompt.example_turns(chosen, None, universe, ask, fill_null)
        return list(turns), 0

    # -- extraction: examples from the catalog, values copied from the data -----------------------------

    @property
    def copies_values(self) -> bool:
        """True for an extraction step whose values are copied from the product data (`values: copied`)."""
        return self.spec.targets is not None and self.spec.targets.values == "copied"

    @property
    def takes_catalog_examples(self) -> bool:
        """True when the step fills missing fields and the recipe has an `examples` param (k per row)."""
        targets = self.spec.targets
        return targets is not None and targets.when == "missing" and "examples" in self.recipe.default_params

    def with_pool(self, rows: Iterable[Any], params: dict[str, Any], keep: Path | None = None) -> Step:
        """A copy of this step whose extraction examples come from `rows` (the catalog's rows, read once),
        or from the pool an earlier run kept in `keep`."""
        from skuforge.knowledge.catalog_examples import ExamplePool, approved_rows, similarity

        inp = self.spec.input
        fields = (
            [f.rstrip("?") for f in inp.fields]
            if isinstance(inp, InputSpec) and isinstance(inp.fields, list)
            else []
        )
        fields += list(inp.optional) if isinstance(inp, InputSpec) else []
        universe = self._column_universe(params)
        step = copy.copy(self)
        fingerprint = json.dumps([universe, fields, similarity()[0]], ensure_ascii=False)
        step.pool = ExamplePool.load(keep, fingerprint) if keep is not None else None
        if step.pool is None:
            step.pool = ExamplePool.build(
                (getattr(row, "data", row) for row in rows),
                universe=universe,
                fields=fields,
                approved=approved_rows(self.recipe.name),
            )
            if keep is not None:
                step.pool.save(keep, fingerprint)
        return step

    def _extraction_examples(
        self,
        ctx: dict[str, Any],
        chosen: list[tuple[dict[str, Any], dict[str, Any]]],
        universe: list[str],
        targets: list[str],
        params: dict[str, Any],
    ) -> tuple[list[Message], int]:
        """The recipe's examples whole, then the catalog's: those standing for the row's category (with the
        category's attributes), then the filled rows most like this one (with this row's attributes); and
        how many of the turns are this row's own (the most similar rows')."""

        def ask_for(keys: list[str]) -> str:
            return render(self._ask, {**ctx, "targets": keys}).strip() if self._ask is not None else ""

        turns = prompt.stated_turns(chosen, universe, ask_for)
        k = int(params.get("examples") or 0)
        if self.pool is None or k <= 0:
            return turns, 0
        row = ctx["row"]
        similar = min(k, SIMILAR_PER_ROW)
        # Never the row itself: a row that stands for its category is replaced by the next one, and the
        # others keep the category's examples, a prefix its rows share.
        own = self.pool.text_of(row)
        standing = self.pool.for_category(str(row.get("category") or ""), k - similar + 1)
        standing = [s for s in standing if s.text != own][: k - similar]
        keys = self.pool.targets(row, universe)
        for shot in standing:
            turns += prompt.shot_turns([(shot.data, {t: shot.values.get(t) for t in keys})], ask_for(keys))
        before = len(turns)
        for shot in self.pool.pick(row, targets, similar, skip=standing):
            turns += prompt.shot_turns([(shot.data, {t: shot.values.get(t) for t in targets})], "")
        return turns, len(turns) - before

    # -- answers ---------------------------------------------------------------------------------------

    def parse(self, text: str, schema: dict[str, Any] | None = None) -> Any:
        """The first JSON object in the answer, validated against `schema` (default: the step's schema)."""
        return parse_answer(text, schema or self.output_schema, step=self.name)

    def settle(self, row: dict[str, Any], output: Any) -> tuple[Any, list[Finding]]:
        """The parsed output held to what the catalog's filled rows of the row's category show, with a note
        for each change: a value with more than the measurement they always give is cut to it
        (`ExamplePool.measurement_units`); a value they give only as another attribute moves there when this
        answer left that one empty, else it is dropped (`ExamplePool.misplaced`); a value outside the few
        the category uses for an attribute is dropped (`ExamplePool.usual_values`). Without examples from
        the catalog the output is unchanged."""
        if self.pool is None or not isinstance(output, dict):
            return output, []
        settled, notes = self._measured(row, output)
        for name, value, holders in self.pool.misplaced(row, settled):
            settled[name] = None
            home = max(holders, key=lambda held: holders[held])
            moved = home in settled and settled[home] is None
            if moved:
                settled[home] = value
            where = ", ".join(f"{a} ({n} rows)" for a, n in sorted(holders.items(), key=lambda kv: -kv[1]))
            then = f"moved to {home}" if moved else "dropped"
            notes.append(
                _settled(
                    name,
                    value,
                    f"{value!r} as {name} {then}: the catalog's filled rows of this category give it as "
                    f"{where}, never as {name}.",
                )
            )
        for name, value in list(settled.items()):
            usual = self.pool.usual_values(row, name) if isinstance(value, str) else None
            if usual is not None and value.strip().casefold() not in usual:
                settled[name] = None
                reason = (
                    f"{value!r} as {name} dropped: the catalog's filled rows of this category use only "
                    f"{len(usual)} values for it ({_listed(usual)})."
                )
                notes.append(_settled(name, value, reason))
        return settled, notes

    def _measured(self, row: dict[str, Any], output: dict[str, Any]) -> tuple[dict[str, Any], list[Finding]]:
        """The output with each value of a measurement attribute that says more than one measurement
        (`1.6g Lead Head Hook Bait`, `12.5cm/17.3g` as a weight) cut to the one in the category's units."""
        from skuforge.knowledge.catalog_examples import measurement_in, measurement_unit

        assert self.pool is not None
        settled, notes = dict(output), []
        for name, value in output.items():
            units = self.pool.measurement_units(row, name) if isinstance(value, str) else None
            if units is None or measurement_unit(value) is not None:
                continue
            cut = measurement_in(value, units)
            if cut is not None:
                settled[name] = cut
                reason = (
                    f"{value!r} as {name} cut to {cut!r}: the catalog's filled rows of this category give "
                    f"{name} as a number and a unit ({_listed(units)})."
                )
                notes.append(_settled(name, value, reason))
        return settled, notes

    def repair_request(self, request: Request, bad_text: str, error: str) -> Request:
        """The one repair attempt: the original turns, the bad answer, and the error quoted back."""
        quoted = bad_text if len(bad_text) <= MAX_REPAIR_QUOTE else bad_text[:MAX_REPAIR_QUOTE] + "…"
        messages = [
            *request.messages,
            Message(role="assistant", content=quoted),
            Message(role="user", content=prompt.repair_text(error)),
        ]
        tag = f"{request.tag or self.name}.repair"
        return request.model_copy(update={"messages": messages, "tag": tag})


def _listed(values: set[str], most: int = 8) -> str:
    """The first `most` of `values` in order, for a note: `men, women` or `a, b, ..., h, ...`."""
    return ", ".join(sorted(values)[:most]) + (", ..." if len(values) > most else "")


def _settled(name: str, value: str, reason: str) -> Finding:
    """A note on an output value `Step.settle` changed: kept with the item, it flags nothing."""
    return Finding(check=CATALOG_NOTE, ok=True, field=name, reason=reason, details={"value": value})


STATIC_NAMES = frozenset({"params", "recipe", "step", "locale", "variant"})
"""What a section may read and still render the same for every row of a run (no row, outputs or targets)."""


PER_ROW_NAMES = frozenset({"row", "outputs", "targets", "data_chars", "data_tokens"})
"""What only the whole row, or work done for it, can answer: a section that reads one is rendered per row."""
MEMO_SIZE = 4096
"""Renders a step keeps for reuse (system prompts by the fields they read, example turns); past it the
memo starts again, so a section that reads a field unique to each row does not grow with the catalog."""


def _row_reads(sources: list[str], variant_keys: set[str]) -> tuple[str, ...] | None:
    """The row's fields that these sections read, when reading fields by name is all they do of the row:
    then they render the same for every row with the same values of those fields (and the same variant and
    params); `()` when they read nothing of it. None when one reads the row as a whole, earlier outputs or
    the targets, or calls a retrieval function (whose sources must be recorded for each row)."""
    names: set[str] = set()
    for source in sources:
        if "knowledge" in source or "examples" in source:
            return None
        try:
            names |= meta.find_undeclared_variables(STRICT.parse(source))
        except TemplateSyntaxError:  # reported where the section is compiled; here: render it per row
            return None
    reads = names - STATIC_NAMES - variant_keys - set(STRICT.globals)
    return None if reads & PER_ROW_NAMES else tuple(sorted(reads))


def _variant_key(variant: dict[str, Any], params: dict[str, Any]) -> bytes:
    return orjson.dumps([variant, params], option=orjson.OPT_SORT_KEYS, default=str)


class _Blank(dict):
    """format_map values where a variant key the pattern names but this variant lacks renders empty."""

    def __missing__(self, key: str) -> str:
        return ""


def _check_value(value: str, ctx: dict[str, Any]) -> Any:
    """A check param with a template: one `{{ expression }}` keeps its type, anything else is rendered."""
    whole = re.fullmatch(r"\s*\{\{(.*)\}\}\s*", value, re.DOTALL)
    if whole and "{{" not in whole.group(1) and "}}" not in whole.group(1):
        native = evaluate(compile_expression(whole.group(1)), ctx)
        return _scalar(native) if isinstance(native, str) else native
    return _scalar(render(compile_template(value), ctx))


def _scalar(text: str) -> Any:
    """A rendered check value back to a number when it is one ("80" -> 80)."""
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text
