"""A loaded recipe: its steps, its parameters, the columns it needs and a fingerprint of its content."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from skuforge.errors import RecipeError
from skuforge.recipes import params as param_rules
from skuforge.recipes.spec import ParamSpec, RecipeSpec
from skuforge.recipes.step import RecipeContext, Step


class Recipe:
    """A validated recipe. Build it with `load_recipe`; `Recipe(spec)` is for recipes made in code."""

    def __init__(self, spec: RecipeSpec, *, source: Path | None = None, where: dict[str, str] | None = None):
        self.spec = spec
        self.name = spec.name
        self.version = spec.version
        self.description = spec.description
        self.source = source
        self.param_specs: dict[str, ParamSpec] = dict(spec.params)
        self.params: dict[str, Any] = param_rules.defaults(spec.name, spec.params)
        self.defaults = dict(spec.defaults)
        context = RecipeContext(
            name=spec.name,
            version=spec.version,
            description=spec.description,
            defaults=self.defaults,
            allowed=dict(spec.allowed),
            glossary=list(spec.glossary),
            default_params=self.params,
            where=dict(where or {}),
        )
        self.steps: list[Step] = [Step(s, context) for s in spec.steps]

    def __repr__(self) -> str:
        return f"Recipe({self.name!r}, version={self.version!r}, steps={[s.name for s in self.steps]})"

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise RecipeError(
            f"Recipe '{self.name}' has no step '{name}'.",
            f"Its steps: {', '.join(s.name for s in self.steps)}.",
        )

    def prepare(
        self,
        rows: Callable[[], Iterable[Any]],
        settings: Any = None,
        params: dict[str, Any] | None = None,
        *,
        keep: Path | None = None,
    ) -> Recipe:
        """This recipe made ready for one run over one catalog; called once, before the first request.

        `rows()` streams the catalog's rows (`CatalogRow`s or plain dicts); it is called once per
        extraction step that takes examples from the catalog (a step filling missing fields, in a recipe
        with an `examples` param above 0; `--set examples=0` turns it off). Such a step gets a bounded,
        embedded pool of the filled rows and of review's approved edits (`knowledge.catalog_examples`).

        `keep` is a directory for one job: the first run writes the pools there, later runs of the job read
        them, so that editing one row (which may be another row's example) regenerates only that row.

        Returns a prepared copy and leaves this recipe as it is: `load_recipe` hands the same instance to
        every caller in the process, and two runs over two catalogs must not share examples. `settings` is
        accepted for the engine's convenience and not used yet."""
        params = self.params if params is None else params
        if not any(step.takes_catalog_examples for step in self.steps) or not int(
            params.get("examples") or 0
        ):
            return self
        prepared = copy.copy(self)
        prepared.steps = [
            step.with_pool(rows(), params, keep / step.name if keep else None)
            if step.takes_catalog_examples
            else step
            for step in self.steps
        ]
        return prepared

    def fingerprint(self) -> str:
        """sha256 of the recipe's canonical content (parsed YAML, sorted keys): formatting and comments
        do not change it, any change to what the recipe says does. Never a hash of code."""
        body = self.spec.model_dump(mode="json", by_alias=True)
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def resolve_params(self, given: dict[str, Any]) -> dict[str, Any]:
        """Typed parameters from the CLI's strings ("locales=de,fr" gives ["de", "fr"]) over the defaults."""
        return param_rules.resolve(self.name, self.param_specs, given or {})

    def required_columns(self, params: dict[str, Any] | None = None) -> set[str]:
        """Columns the catalog must have before any request is sent (defaults excuse a column)."""
        params = self.params if params is None else params
        cols: set[str] = set()
        for step in self.steps:
            cols |= step.required_columns(params)
        return cols


@dataclass
class RecipeInfo:
    """A recipe as `list_recipes` shows it."""

    name: str
    version: str
    description: str
    source: Path
    steps: list[str]
    builtin: bool = False
    overrides: Path | None = None
    problem: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecipeProblem:
    """One mistake in a recipe file, with its line (1-based) when known."""

    path: Path
    line: int | None
    message: str
    where: str = ""

    def __str__(self) -> str:
        place = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{place}: " + (f"{self.where}: " if self.where else "") + self.message
