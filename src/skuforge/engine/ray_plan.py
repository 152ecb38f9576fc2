"""The Ray executor's CPU stage: select rows, render their first step's requests, compute item keys, and
drop what earlier runs finished (the anti-join). Runs in Ray Data tasks, one batch of rows at a time.

Input is the catalog's Parquet partitions (`catalog.partition`). For each batch:

1. Selection, per batch and without any global pass: `--where` by DuckDB inside the task, with the same
   column types, file-access lock-down and time and memory limits as a local run (`catalog.predicate`, the
   types decided once, on the driver, from the catalog's first rows); `--sample N` keeps a row when its
   seeded draw (`catalog.selection.draw(seed, row id)`, the same draw a local sample ranks by) falls under
   N / rows, so about N rows, the same ones on every run, with no global ranking (not spread over
   categories as a local sample is); `--limit N` alone keeps row indices below N.
2. Planning through the engine's own `ItemPipeline.plan`: the same request and key as any executor.
3. The anti-join. Each first-step key is looked up in the shards of finished keys (`engine.ray_index`) and,
   when the job has earlier work in the store and the store is reachable from this node, in the store
   (`Store.prior` by row id, `Store.finished_by_keys` by key). A row whose items of a one-step recipe are all
   finished under this very product is passed on as a marker only (counted, never sent); anything found under
   another product travels with its row, so the worker reuses it instead of sending it.

The output keeps the row's columns and adds `planned` (the first step's requests and keys, as JSON), `prior`
(earlier outcomes the worker needs) and `finished` (items already done, for markers).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from skuforge.catalog import Catalog, CatalogRow
from skuforge.catalog.partition import Partitions, rows_of
from skuforge.catalog.selection import draw
from skuforge.engine.context import JobContext, variant_label
from skuforge.engine.pipeline import ItemPipeline, Planned
from skuforge.engine.ray_index import Found, KeyIndex
from skuforge.engine.ray_output import OutputFolder
from skuforge.engine.spec import JobSpec
from skuforge.errors import ConfigError
from skuforge.knowledge.catalog_examples import unpacked_pools
from skuforge.providers.base import Message, Request
from skuforge.store import FINISHED, ItemOutcome, ItemRecord, Job

log = logging.getLogger("skuforge.engine.ray")
ROW_COLUMNS = ("row_index", "row_id", "row_line", "row_data", "row_typed")
ENV_PREFIXES = (
    "SKUFORGE_",
    "OPENAI_",
    "ANTHROPIC_",
    "DEEPSEEK_",
    "DASHSCOPE_",
    "OLLAMA_",
    "VLLM_",
    "GEMINI_",
)


@dataclass(slots=True)
class RowSelection:
    """`--where`, `--sample` and `--limit` as each batch applies them (see the module docstring)."""

    where: str | None = None
    where_rows: list[CatalogRow] = field(default_factory=list)  # the first rows: the predicate's types
    sample_below: int | None = None  # keep rows whose draw is below this
    seed: int = 0
    below_index: int | None = None  # --limit without --where/--sample: keep row indices below this

    def predicate(self, catalog: Catalog) -> Any:
        """The compiled `--where` for this process (DuckDB, locked down, within limits)."""
        from skuforge.catalog.predicate import Predicate

        assert self.where is not None
        return Predicate(catalog, self.where, self.where_rows)

    def keep(self, table: Any, predicate: Any = None) -> Any:
        """The rows of a table of partition rows that the selection keeps, in order."""
        if self.below_index is None and self.sample_below is None and self.where is None:
            return table
        keep = []
        ids = table.column("row_id").to_pylist()
        for position, (index, row_id) in enumerate(
            zip(table.column("row_index").to_pylist(), ids, strict=True)
        ):
            if self.below_index is not None and index >= self.below_index:
                continue
            if self.sample_below is not None and draw(self.seed, row_id) >= self.sample_below:
                continue
            keep.append(position)
        if self.where is not None and keep:
            rows = rows_of(table.take(keep))
            matched = {row.index for row in predicate.keep(rows)}
            keep = [p for p, row in zip(keep, rows, strict=True) if row.index in matched]
        return table.take(keep)


@dataclass(slots=True)
class RunPlan:
    """What every worker process of one run needs; sent once (`ray.put`), opened once per process."""

    run_id: str
    job: Job
    partitions: Partitions
    folder: str
    run: int
    selection: RowSelection
    shards: list[Any] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    store_url: str | None = None  # set when the job has earlier work in the store
    coordinator: Any = None
    window: int = 256
    env: dict[str, str] = field(default_factory=dict)  # the driver's SKUFORGE_* and provider variables
    examples: dict[str, bytes] = field(default_factory=dict)  # the driver's example pools (`pool_files`)


def apply_env(env: dict[str, str], prefixes: tuple[str, ...]) -> None:
    """Make this worker process see the driver's settings (a reused worker may hold another run's)."""
    for name in [n for n in os.environ if n.startswith(prefixes) and n not in env]:
        del os.environ[name]
    os.environ.update(env)


def worker_context(job: Job, partitions: Partitions, examples: dict[str, bytes] | None = None) -> JobContext:
    """The job's context in a worker: the recipe from its path or the built-ins, the catalog's columns from
    the partitions' manifest (the original file need not exist on this node), and the example pools the
    driver built from the catalog's filled rows (`Recipe.prepare`), so a row gets the same examples, and
    the same item key, as in a local run."""
    from skuforge.config import load_settings
    from skuforge.recipes import load_recipe

    spec = JobSpec.from_job(job)
    settings = load_settings()
    source = partitions.source
    catalog = Catalog(
        path=Path(source.get("path", "catalog")),
        format=source.get("format", "parquet"),
        columns=list(partitions.columns),
        sheet=source.get("sheet"),
        id_column=partitions.id_column,
    )
    recipe = load_recipe(spec.recipe, [*settings.recipe_dirs, *spec.recipe_dirs])
    params = recipe.resolve_params(spec.params)
    if examples:
        keep = unpacked_pools(examples, Path(tempfile.gettempdir()) / "skuforge-ray")
        recipe = recipe.prepare(_driver_pools_only, settings, params, keep=keep)
    return JobContext(spec, settings, catalog, recipe, params, job.id)


def _driver_pools_only() -> Iterator[Any]:
    """The rows a worker would read to build a pool itself: none. It only reads the driver's; reaching
    here means they did not fit this worker's recipe (another skuforge version or similarity model)."""
    raise ConfigError(
        "A Ray worker could not use the example pools the driver made from the catalog.",
        "Install the same skuforge version, with the same extras, on every node.",
    )
    yield  # a generator: raised only if a pool is built from it


# -- requests and outcomes as text ---------------------------------------------------------------------
def encode_request(request: Request) -> str:
    body = {k: v for k, v in request.__dict__.items() if v is not None and k != "messages"}
    body["messages"] = [[m.role, m.content] for m in request.messages]
    return orjson.dumps(body).decode()


def decode_request(text: str) -> Request:
    """A request exactly as it was rendered (built without re-validating: it was valid when rendered)."""
    body = orjson.loads(text)
    messages = [Message.model_construct(role=role, content=content) for role, content in body.pop("messages")]
    return Request.model_construct(messages=messages, **body)


def encode_planned(planned: list[Planned]) -> bytes:
    return orjson.dumps(
        [
            [p.key, encode_request(p.request) if p.request is not None else None, _outcome(p.decided)]
            for p in planned
        ]
    )


def decode_planned(blob: bytes, row: CatalogRow, ctx: JobContext) -> list[Planned]:
    step = ctx.steps[0]
    model = ctx.model_for(step)
    planned = []
    for (key, request, decided), variant in zip(orjson.loads(blob), ctx.variants(step), strict=True):
        item = Planned(row, step, variant, variant_label(variant), model, key=key)
        item.request = decode_request(request) if request is not None else None
        item.decided = ItemOutcome(**decided) if decided is not None else None
        planned.append(item)
    return planned


def _outcome(outcome: ItemOutcome | None) -> dict[str, Any] | None:
    return dataclasses.asdict(outcome) if outcome is not None else None


def encode_prior(by_row: list[ItemRecord], by_key: list[ItemRecord]) -> bytes | None:
    if not by_row and not by_key:
        return None
    return orjson.dumps(
        {"row": [dataclasses.asdict(r) for r in by_row], "key": [dataclasses.asdict(r) for r in by_key]}
    )


def decode_prior(blob: bytes | None) -> tuple[list[ItemRecord], list[ItemRecord]]:
    if not blob:
        return [], []
    body = orjson.loads(blob)
    return [ItemRecord(**r) for r in body["row"]], [ItemRecord(**r) for r in body["key"]]


# -- the stage ---------------------------------------------------------------------------------------------
class Planner:
    """One process's planner for one run (built on first use, kept for the run's later batches)."""

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
        apply_env(plan.env, ENV_PREFIXES)
        self.ctx = worker_context(plan.job, plan.partitions, plan.examples)
        self.pipeline = ItemPipeline(self.ctx, {})
        self.step = self.ctx.steps[0]
        self.one_step = len(self.ctx.steps) == 1
        self.index = KeyIndex(plan.shards, plan.parts)
        self.folder = OutputFolder(plan.folder)
        self.store = _reachable_store(plan.store_url)
        self._predicate: Any = None
        self._parts: OrderedDict[int, list[ItemRecord]] = OrderedDict()

    # -- selection -------------------------------------------------------------------------------------
    def select(self, table: Any) -> Any:
        """The rows of the batch the job runs on."""
        if self._predicate is None and self.plan.selection.where is not None:
            self._predicate = self.plan.selection.predicate(self.ctx.catalog)
        return self.plan.selection.keep(table, self._predicate)

    # -- planning and the anti-join --------------------------------------------------------------------
    def __call__(self, table: Any) -> Any:
        if self._stopped():
            table = table.slice(0, 0)  # the run stopped (budget, provider): render nothing more
        table = self.select(table)
        rows = rows_of(table)
        variants = self.ctx.variants(self.step)
        planned = [[self.pipeline.plan(row, self.step, v, {}) for v in variants] for row in rows]
        earlier = self._earlier(rows, planned)
        blobs: list[bytes | None] = []
        priors: list[bytes | None] = []
        finished: list[int] = []
        keep_data: list[bool] = []
        for row, items in zip(rows, planned, strict=True):
            by_row, by_key, done = earlier.get(row.row_id, ([], [], 0))
            if done == len(items) and self.one_step:
                blobs.append(None)
                priors.append(None)
                finished.append(done)
                keep_data.append(False)
                continue
            blobs.append(encode_planned(items))
            priors.append(encode_prior(by_row, by_key))
            finished.append(0)
            keep_data.append(True)
        if self.plan.coordinator is not None:
            import ray

            ray.get(self.plan.coordinator.planned.remote(table.num_rows))
        return _output(table, blobs, priors, finished, keep_data)

    def _stopped(self) -> bool:
        import ray

        return (
            self.plan.coordinator is not None and ray.get(self.plan.coordinator.stopped.remote()) is not None
        )

    def _earlier(
        self, rows: list[CatalogRow], planned: list[list[Planned]]
    ) -> dict[str, tuple[list[ItemRecord], list[ItemRecord], int]]:
        """Per row id: earlier outcomes the worker needs (by row, by key) and how many first-step items
        are finished under this very product with an unchanged key."""
        if not self.index and self.store is None:
            return {}
        items = [(row, p) for row, ps in zip(rows, planned, strict=True) for p in ps if p.key]
        stored = (
            self.store.prior(self.plan.job.id, [r.row_id for r in rows]) if self.store is not None else {}
        )
        hits = self.index.lookup([(p.key, row.row_id, p.step.name, p.label) for row, p in items])
        wanted = [p.key for (row, p), hit in zip(items, hits, strict=True) if hit is None]
        answers = (
            self.store.finished_by_keys(self.plan.job.id, wanted) if self.store is not None and wanted else {}
        )
        earlier: dict[str, tuple[list[ItemRecord], list[ItemRecord], int]] = {}
        for (row, p), hit in zip(items, hits, strict=True):
            by_row, by_key, done = earlier.get(row.row_id, ([], [], 0))
            own = stored.get((row.row_id, p.step.name, p.label))
            if own is not None and own.key == p.key and own.status in FINISHED:
                done += own.row_index == row.index  # a moved row is rewritten at its new index
                by_row.append(own)
            elif hit is not None and hit.same_item:
                done += 1
                if not self.one_step:
                    by_row.append(self._record(hit))
            elif hit is not None:
                by_key.append(self._record(hit))
            elif p.key in answers:
                by_key.append(answers[p.key])
            earlier[row.row_id] = (by_row, by_key, done)
        for (row_id, step, label), record in stored.items():  # decided items and later steps of the row
            by_row = earlier.setdefault(row_id, ([], [], 0))[0]
            if step != self.step.name or not any(r.step == step and r.variant == label for r in by_row):
                by_row.append(record)
        return earlier

    def _record(self, hit: Found) -> ItemRecord:
        """The outcome an index hit points at, read from its part (a few recent parts are kept)."""
        records = self._parts.get(hit.part)
        if records is None:
            records = self.folder.records(f"{self.folder.path}/{self.plan.parts[hit.part]}")
            self._parts[hit.part] = records
            if len(self._parts) > 8:
                self._parts.popitem(last=False)
        else:
            self._parts.move_to_end(hit.part)
        return records[hit.seq]


def _output(
    table: Any, blobs: list[bytes | None], priors: list[bytes | None], finished: list[int], keep: list[bool]
) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = pa.array(keep, pa.bool_())
    columns = {
        "row_index": table.column("row_index"),
        "row_id": table.column("row_id"),
        "row_line": pc.if_else(mask, table.column("row_line"), pa.scalar(None, pa.string())),
        "row_data": pc.if_else(mask, table.column("row_data"), pa.scalar(None, pa.string())),
        "row_typed": pc.if_else(mask, table.column("row_typed"), pa.scalar(None, pa.string())),
        "planned": pa.array(blobs, pa.binary()),
        "prior": pa.array(priors, pa.binary()),
        "finished": pa.array(finished, pa.int32()),
    }
    return pa.table(columns)


def _reachable_store(url: str | None) -> Any:
    """The job's store, when the run has earlier work there and this node can open it (a SQLite file that
    is on this node, or a server); None otherwise."""
    if url is None:
        return None
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        log.warning("The store %s is not on this node: earlier work is looked up in the output only.", url)
        return None
    from skuforge.store import open_store

    return open_store(url)


_PLANNERS: dict[str, Planner] = {}


def planner_for(plan: Any) -> Planner:
    """This process's planner for the run (Ray reuses worker processes across tasks)."""
    import ray

    if isinstance(plan, ray.ObjectRef):
        key = plan.hex()
        found = _PLANNERS.get(key)
        if found is None:
            _PLANNERS.clear()  # one run at a time per process
            found = _PLANNERS[key] = Planner(ray.get(plan))
        return found
    found = _PLANNERS.get(plan.run_id)
    if found is None:
        _PLANNERS.clear()
        found = _PLANNERS[plan.run_id] = Planner(plan)
    return found


def plan_batch(table: Any, plan: Any) -> Any:
    """The plan stage's function for `map_batches` (see the module docstring)."""
    return planner_for(plan)(table)


def select_batch(table: Any, plan: Any) -> Any:
    """Selection alone (before a `--limit` that needs the selection's order)."""
    return planner_for(plan).select(table)
