"""A job's context: its spec, catalog, selection, recipe and params, opened once and cheaply.

Anything that needs to know what a job is made of (the executors, export, review, the trial preview, the
service) opens a `JobContext`; opening reads the catalog's header and loads the recipe, nothing more.

    ctx = JobContext.open(job)            # or JobContext.from_spec(spec)
    for row in ctx.rows(): ...            # the selected rows, streamed
    ctx.generated_columns()               # the export's generated columns, in order
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skuforge.catalog import Catalog, CatalogRow, open_catalog, select
from skuforge.config import Settings, load_settings
from skuforge.engine.spec import JobSpec
from skuforge.errors import RecipeError, SelectionError, SkuforgeError
from skuforge.recipes import Recipe, Step, load_recipe
from skuforge.store import Job

GENERATED_SUFFIX = "_generated"
ID_COLUMNS = (
    "sku",
    "sku_id",
    "id",
    "product_id",
    "item_id",
    "asin",
    "spu",
    "spu_id",
    "商品id",
    "商品编号",
    "货号",
)


def detect_id_column(columns: list[str]) -> str | None:
    """A column that names products (sku, id, asin, 货号 ...), so ids survive re-sorted or grown catalogs."""
    lowered = {c.strip().lower(): c for c in columns}
    return next((lowered[name] for name in ID_COLUMNS if name in lowered), None)


def variant_label(variant: dict[str, Any]) -> str:
    """A stable short name for a variant: '' for none, 'de' for {'locale': 'de'}, 'a=1,b=2' otherwise."""
    if not variant:
        return ""
    if len(variant) == 1:
        return str(next(iter(variant.values())))
    return ",".join(f"{k}={variant[k]}" for k in sorted(variant))


@dataclass
class JobContext:
    """What a job is made of. Build it with `JobContext.open(job)` or `JobContext.from_spec(spec)`."""

    spec: JobSpec
    settings: Settings
    catalog: Catalog
    recipe: Recipe
    params: dict[str, Any]
    job_id: str = ""
    _variants: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)
    _rows_in_file: int | None = field(default=None, repr=False)  # counted by the id scan, when it ran
    _original: set[str] | None = field(default=None, repr=False)  # the catalog's columns, casefolded

    @classmethod
    def open(cls, job: Job, settings: Settings | None = None) -> JobContext:
        return cls.from_spec(JobSpec.from_job(job), settings, job_id=job.id)

    @classmethod
    def from_spec(cls, spec: JobSpec, settings: Settings | None = None, *, job_id: str = "") -> JobContext:
        """Open the catalog (its header only) and the recipe; check that the recipe's columns exist."""
        settings = settings or load_settings()
        catalog = _open_catalog(spec)
        dirs: list[Path | str] = [*settings.recipe_dirs, *spec.recipe_dirs]
        recipe = load_recipe(spec.recipe, dirs)
        params = recipe.resolve_params(spec.params)
        ctx = cls(spec, settings, catalog, recipe, params, job_id)
        ctx._check_columns()
        return ctx

    def _check_columns(self) -> None:
        missing = sorted(self.recipe.required_columns(self.params) - set(self.catalog.columns))
        if missing:
            raise RecipeError(
                f"Recipe '{self.recipe.name}' needs column '{missing[0]}', which {self.catalog.path} "
                f"does not have (columns: {', '.join(self.catalog.columns)}).",
                f"Add a '{missing[0]}' column, or give it a default under 'defaults:' in the recipe.",
            )

    # -- rows ------------------------------------------------------------------------------------------
    def rows(self) -> Iterator[CatalogRow]:
        """The selected rows, streamed in catalog order (a new pass on every call)."""
        sel = self.spec.selection
        return select(self.catalog, where=sel.where, limit=sel.limit, sample=sel.sample, seed=sel.seed)

    def count_rows(self) -> int | None:
        """How many rows the selection holds, when that is cheap to know (None with --where)."""
        sel = self.spec.selection
        counter = getattr(self.catalog, "count", None)
        if sel.where or counter is None:
            return sel.sample or None
        try:
            total = self._rows_in_file if self._rows_in_file is not None else counter()
        except SkuforgeError:
            return None
        for cap in (sel.limit, sel.sample):
            if cap is not None and total is not None:
                total = min(total, cap)
        return total

    # -- steps, variants, columns ----------------------------------------------------------------------
    @property
    def steps(self) -> list[Step]:
        return list(self.recipe.steps)

    def variants(self, step: Step) -> list[dict[str, Any]]:
        """The step's variants for this job's params (computed once)."""
        if step.name not in self._variants:
            self._variants[step.name] = step.variants(self.params)
        return self._variants[step.name]

    def model_for(self, step: Step) -> str:
        return step.model or self.spec.model

    def models(self) -> list[str]:
        return list(dict.fromkeys(self.model_for(step) for step in self.steps))

    def items_per_row(self) -> int:
        return sum(len(self.variants(step)) for step in self.steps)

    def generated_columns(self) -> list[str]:
        """The columns the recipe's outputs fill, in order (before renaming around original columns)."""
        names: list[str] = []
        for step in self.steps:
            for name in step.column_names(self.params):
                if name not in names:
                    names.append(name)
        return names

    def export_columns(self) -> list[str]:
        """The generated columns as the export names them (see `export_name`)."""
        return [self.export_name(name) for name in self.generated_columns()]

    def export_name(self, name: str) -> str:
        """A generated column's name in the export: one that has an original column's name, in any case,
        gets `_generated` ('color' -> 'color_generated'), so the original is never overwritten."""
        if self._original is None:
            self._original = {c.casefold() for c in self.catalog.columns}  # 'Brand' and 'brand' are one
        return f"{name}{GENERATED_SUFFIX}" if name.casefold() in self._original else name

    # -- before paying ---------------------------------------------------------------------------------
    def check_ready(self, *, ids: bool = True) -> None:
        """Everything a run needs that can be wrong, checked before the first request is sent: the
        recipe directories, the output path, the generated columns, the selection and the rows, and
        (`ids`: one pass over the whole file) duplicated product ids."""
        from skuforge.catalog import check_output_path
        from skuforge.recipes.loader import check_recipe_dirs

        check_recipe_dirs(self.spec.recipe_dirs)
        if self.spec.out:
            check_output_path(self.spec.out, self.catalog.path)
        self._check_collisions()
        self._check_selection()
        if ids:
            self._check_ids()

    def _check_ids(self) -> None:
        """Duplicate product ids, over the whole file in bounded memory (rows() no longer checks them)."""
        if not self.catalog.id_column:
            return
        from skuforge.catalog.ids import scan_ids

        scan = scan_ids(self.catalog)
        if scan.duplicate is not None:
            raise scan.duplicate
        self._rows_in_file = scan.rows

    def _check_collisions(self) -> None:
        taken = {c.casefold() for c in self.catalog.columns}
        for name in self.generated_columns():
            renamed = f"{name}{GENERATED_SUFFIX}"
            if name.casefold() in taken and renamed.casefold() in taken:
                raise RecipeError(
                    f"The catalog has both '{name}' and '{renamed}': the generated '{name}' would overwrite "
                    f"the catalog's own '{renamed}' column in the export.",
                    f"Rename or drop the '{renamed}' column (e.g. a previous run's output used as input), "
                    "or run on the original catalog.",
                )

    def _check_selection(self) -> None:
        """A bad `--where` fails on the first rows; a catalog or selection without rows says so."""
        sel = self.spec.selection
        first = next(iter(select(self.catalog, where=sel.where, limit=1)), None)
        if first is None:
            what = "no row matches the selection" if self.spec.selection.where else "it has no data rows"
            raise SelectionError(
                f"Nothing to run in {self.catalog.path.name}: {what}.",
                "Check the --where predicate and --sheet / --header-row, or add rows to the catalog.",
            )


def _open_catalog(spec: JobSpec) -> Catalog:
    """The job's catalog; its ids are checked once per run (`JobContext.check_ready`), not on every pass,
    so streaming it stays flat in memory however long it is."""
    sel = spec.selection
    options: dict[str, Any] = {"sheet": sel.sheet, "header_row": sel.header_row, "encoding": sel.encoding}
    catalog = open_catalog(spec.catalog, id_column=sel.id_column, **options)
    if sel.id_column is None and (found := detect_id_column(catalog.columns)):
        catalog = open_catalog(spec.catalog, id_column=found, **options)
    catalog.check_ids = False
    return catalog
