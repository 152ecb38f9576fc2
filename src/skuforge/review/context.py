"""What a review needs to know about its job: the recipe's steps, their variants, and the source rows.

Loading the recipe and opening the catalog cost a little, so one context serves a whole import or a page of
the queue. Source rows are fetched in one streaming pass over the job's selection for all the rows asked
for at once, never one pass per item.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import Any

from skuforge.catalog import CatalogRow
from skuforge.errors import NotFoundError
from skuforge.recipes import Recipe, Step
from skuforge.recipes.spec import InputSpec
from skuforge.store import Job, Store

EXAMPLES_HOOK = re.compile(r"examples\s*\(")  # a recipe calling `examples(` in a template learns from review


class ReviewContext:
    """The recipe, parameters and catalog of one job, loaded on first use."""

    def __init__(self, store: Store, job: Job | str) -> None:
        self.store = store
        self.job = store.get_job(job) if isinstance(job, str) else job
        self._rows: dict[str, CatalogRow] = {}

    @cached_property
    def runner(self) -> Any:
        """The job's `JobContext`: catalog, recipe and params (opened once)."""
        from skuforge.engine.context import JobContext

        return JobContext.open(self.job)

    @property
    def recipe(self) -> Recipe:
        return self.runner.recipe

    @property
    def params(self) -> dict[str, Any]:
        return self.runner.params

    def step(self, name: str) -> Step:
        return self.recipe.step(name)

    def variant(self, step: Step, label: str) -> dict[str, Any]:
        """The variant dict ({'locale': 'de'}) whose label an item carries ('de')."""
        from skuforge.engine.context import variant_label

        for variant in step.variants(self.params):
            if variant_label(variant) == label:
                return variant
        if not label:
            return {}
        raise NotFoundError(
            f"Step '{step.name}' of recipe '{self.recipe.name}' has no variant '{label}' with this job's "
            "parameters.",
            "The recipe or its parameters changed since the run; run the job again, then review.",
        )

    @cached_property
    def learns_from_review(self) -> bool:
        """Whether the recipe opted in to approved examples: one of its templates calls `examples(`."""
        text = self.recipe.spec.model_dump_json(by_alias=True)
        return EXAMPLES_HOOK.search(text) is not None

    def source_columns(self) -> list[str]:
        """The catalog columns a reviewer needs beside the output: what the steps read, in catalog order."""
        catalog_columns = list(self.runner.catalog.columns)
        wanted: set[str] = set(self.recipe.required_columns(self.params))
        for step in self.recipe.steps:
            inp = step.spec.input
            if isinstance(inp, InputSpec):
                names = inp.fields if isinstance(inp.fields, list) else []
                wanted |= {n.rstrip("?") for n in [*names, *inp.optional]}
        chosen = [c for c in catalog_columns if c in wanted]
        return chosen or catalog_columns

    def rows(self, row_ids: Iterable[str]) -> dict[str, CatalogRow]:
        """The catalog rows with these ids (one pass over the selection for those not fetched yet)."""
        wanted = set(row_ids)
        missing = wanted - self._rows.keys()
        if missing:
            for row in self.runner.rows():
                if row.row_id in missing:
                    self._rows[row.row_id] = row
                    missing.discard(row.row_id)
                    if not missing:
                        break
        return {rid: self._rows[rid] for rid in wanted if rid in self._rows}

    def row(self, row_id: str) -> CatalogRow:
        found = self.rows([row_id]).get(row_id)
        if found is None:
            raise NotFoundError(
                f"Row '{row_id}' is no longer in the catalog {self.job.catalog} (or in the job's selection).",
                "Restore the catalog file the job ran on, or run the job again.",
            )
        return found

    def chunks(self, size: int) -> Iterator[list[CatalogRow]]:
        """The job's selection in catalog order, `size` rows at a time (for streaming exports)."""
        chunk: list[CatalogRow] = []
        for row in self.runner.rows():
            chunk.append(row)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
