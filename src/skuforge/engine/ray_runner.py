"""The Ray executor (`skuforge run ... --executor ray [--ray-address ADDR]`): a job's items on Ray Data.

The driver (this module) wires one Ray Data pipeline per run and records what comes back:

    catalog partitions (Parquet)            catalog.partition: converted once, streaming, cached
      -> read_parquet                       Ray Data read tasks
      -> map_batches(plan_batch)            engine.ray_plan: --where/--sample/--limit, render, key, anti-join
      -> map_batches(Caller, actor pool)    engine.ray_workers: async calls under leases, one part per block
      -> block summaries to the driver      counts, progress, the review queue; the store gets summaries

Limits and money are shared through one `Coordinator` actor (`engine.ray_lease`) that hands out leases and
keeps the job's budget ledger in the store. Outcomes go to the job's output folder (`engine.ray_output`):
`SKUFORGE_RAY_OUTPUT/<job id>` (any pyarrow URI) or `SKUFORGE_HOME/ray/<job id>`.

Where results live depends on the run's size (`results`):
- "store" (runs of up to `SKUFORGE_RAY_STORE_ROWS` rows, 100,000 by default): every outcome is recorded in
  the store as its block comes back and the block's part is then deleted; the job is then like any local job.
  Parts a killed driver left are recorded at the start of the next run.
- "output": the parts stay and are the results; `skuforge export` and `show` read them (`engine.ray_results`).
  The store gets the run's figures and the items a person must look at (flagged and failed), so the review
  queue works; one SQLite writer never has to take ten million rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import math
import os
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from skuforge.calls.budget import Budget
from skuforge.catalog.partition import Partitions, catalog_fingerprint, filesystem, join, open_partitions
from skuforge.catalog.partition import partition_catalog as convert
from skuforge.engine.ray_output import OutputFolder, default_folder, latest, output_root
from skuforge.engine.ray_plan import ENV_PREFIXES, RowSelection, RunPlan, plan_batch, select_batch
from skuforge.engine.ray_workers import Caller
from skuforge.errors import BudgetExceeded, ProviderUnavailable, SkuforgeError, require
from skuforge.knowledge.catalog_examples import pool_files
from skuforge.store import FINISHED, ItemOutcome

if TYPE_CHECKING:
    from skuforge.engine.runner import Runner

log = logging.getLogger("skuforge.engine.ray")
BLOCK_ROWS = 512
STORE_ROWS = 100_000
ATTEMPTS = 3
PLAN_ROWS = 2048
BLOCK_BYTES = 16 * 1024 * 1024
"""Ray Data blocks of this run are cut at this size, so a task holds a few thousand rows, never a file."""


class RayExecutor:
    """Runs a job's items on Ray Data (see the module docstring)."""

    def __init__(
        self,
        *,
        address: str | None = None,
        block_rows: int | None = None,
        workers: int | None = None,
        parts_dir: str | None = None,
        results: str | None = None,
        shard_keys: int | None = None,
    ) -> None:
        self.address, self.workers, self.parts_dir = address, workers, parts_dir
        self.block_rows = block_rows or int(os.environ.get("SKUFORGE_RAY_BLOCK_ROWS") or BLOCK_ROWS)
        self.results = results or os.environ.get("SKUFORGE_RAY_RESULTS") or None
        self.shard_keys = shard_keys
        self.coordinator_stats: dict[str, Any] = {}
        self.index_entries = 0
        self.seen: set[str] = set()
        self.lost_workers = 0
        self.examples: dict[str, bytes] = {}  # the example pools the driver kept (`pool_files`)

    async def execute(self, run: Runner) -> None:
        ray = require("ray", "the Ray executor", "ray")
        self.run = run
        self.folder = OutputFolder(default_folder(run.job.id, self.parts_dir))
        self.folder.ensure()
        self.folder.clean()
        self.examples = pool_files(run.examples_dir)  # read once, for every attempt of the run
        self.mode = self._mode()
        state = dict((run.store.get_job(run.job.id).totals or {}).get("ray") or {})
        self.number = max(self.folder.runs(), int(state.get("runs") or 0)) + 1
        self._catch_up(int(state.get("ingested") or 0))
        self._note(runs=self.number, output=self.folder.uri, results=self.mode)
        run.budget = Budget(None)  # the coordinator keeps the job's ledger while the cluster runs
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": forwarded_env()},
            )
        try:
            await self._attempts(ray)
            self.folder.clean()  # what a worker killed during this run was writing when it died
        finally:
            if started_here:
                ray.shutdown()
        self._conclude()

    async def _attempts(self, ray: Any) -> None:
        """Run the pipeline; when a worker is lost (its actor killed, its node gone) Ray Data stops the
        dataset, and the rows not finished are run again (the anti-join skips the rest), up to 3 times."""
        lost = (
            WorkerLost,
            ray.exceptions.RayActorError,
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
        )
        before = dataclasses.replace(self.run.progress)
        carried = 0  # items finished by an attempt that lost a worker: the next attempt sees them as reused
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await asyncio.to_thread(self._drive, ray)
                break
            except lost as exc:
                if attempt == ATTEMPTS or self.run.stopping:
                    raise
                log.warning(
                    "A Ray worker was lost (%s); running the rows not finished again.", type(exc).__name__
                )
                self.lost_workers += 1
                carried += _restart_counts(self.run.progress, before)
        self.run.progress.reused = max(before.reused, self.run.progress.reused - carried)

    # -- before the run ----------------------------------------------------------------------------------
    def _mode(self) -> str:
        if self.results in ("store", "output"):
            return self.results
        total = self.run.progress.rows_total
        limit = int(os.environ.get("SKUFORGE_RAY_STORE_ROWS") or STORE_ROWS)
        return "store" if total is not None and total <= limit else "output"

    def _catch_up(self, ingested: int) -> None:
        """Outcomes earlier runs wrote but a killed driver never recorded: in "store" mode every leftover
        part is recorded and deleted; in "output" mode its flagged and failed items join the review queue."""
        for part in self.folder.parts():
            if self.mode == "store":
                self._record(self.folder.records(part.path))
                self.folder.delete(part.path)
            elif part.run > ingested:
                self._record_review(self.folder.records(part.path, ("flagged", "failed")))

    def partitions(self) -> Partitions:
        """The catalog's partitions under `<output root>/input/`, converted now if they are not there."""
        catalog = self.run.ctx.catalog
        uri = join(join(output_root(), "input"), catalog_fingerprint(catalog))
        found = open_partitions(uri)
        if found is not None:
            return found
        started = time.perf_counter()
        parts = convert(catalog, uri)
        log.info(
            "converted %s to %d partitions in %.1f s",
            catalog.path.name,
            len(parts.files),
            time.perf_counter() - started,
        )
        return parts

    def selection(self, ray: Any, partitions: Partitions) -> RowSelection:
        """The job's --where/--sample/--limit as each batch applies them; rows_total for the progress bar."""
        sel = self.run.spec.selection
        chosen = RowSelection(where=sel.where, seed=sel.seed)
        if sel.where is not None:
            from skuforge.catalog.predicate import TYPE_SAMPLE_ROWS

            chosen.where_rows = list(itertools.islice(self.run.ctx.catalog.rows(), TYPE_SAMPLE_ROWS))
        if sel.limit is not None and sel.where is None and sel.sample is None:
            chosen.below_index = sel.limit
        matching = partitions.rows
        if sel.sample is not None:
            if sel.where is not None:  # the share to keep depends on how many rows match: one counting pass
                matching = (
                    self._read(ray, partitions)
                    .map_batches(
                        select_batch,
                        fn_kwargs={"plan": self._plan(partitions, chosen)},
                        **self._task_options(),
                    )
                    .count()
                )
            if sel.sample < matching:
                chosen.sample_below = math.floor(sel.sample / matching * 2**64)
        self._note(selection={"sample_below": chosen.sample_below, "below_index": chosen.below_index})
        total: int | None = matching if sel.where is None or sel.sample is not None else None
        if total is not None:
            total = min(total, sel.sample or total, sel.limit or total)
        self.run.progress.rows_total = total
        return chosen

    # -- the run -----------------------------------------------------------------------------------------
    def _drive(self, ray: Any) -> None:
        _quiet(ray)
        clock = _Clock()
        partitions = self.partitions()
        clock.mark("partitions")
        selection = self.selection(ray, partitions)
        shards, parts = self._index(ray) if self.mode == "output" else ([], [])
        clock.mark(f"index of {self.index_entries} keys")
        coordinator = self._coordinator(ray)
        plan = self._plan(
            partitions, selection, shards=shards, parts=parts, coordinator=coordinator, examples=self.examples
        )
        ds = self._dataset(ray, partitions, plan)
        try:
            self._follow(ray, ds, coordinator, clock)
            clock.mark("last block back")
        finally:
            self.coordinator_stats = ray.get(coordinator.close.remote())  # the ledger, also after a failure
            ray.kill(coordinator)
            for shard in shards:
                ray.kill(shard)

    def _follow(self, ray: Any, ds: Any, coordinator: Any, clock: _Clock) -> None:
        """Run the dataset (in a thread) and record block summaries as workers report them (every 0.2 s)."""
        failed: list[BaseException] = []
        finished = threading.Event()

        def drain() -> None:
            try:
                for _ in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                    pass
            except BaseException as exc:  # re-raised in the driver's thread below
                failed.append(exc)
            finally:
                finished.set()

        thread = threading.Thread(target=drain, name="skuforge-ray-dataset", daemon=True)
        thread.start()
        try:
            while True:
                done = finished.wait(0.2)
                for summary in ray.get(coordinator.take_summaries.remote()):
                    clock.once("first block back")
                    if self._take(summary):
                        ray.get(coordinator.stop.remote(summary["stopped"], summary["message"]))
                if done:
                    break
        except BaseException:
            ray.get(coordinator.stop.remote("interrupted", "The run was interrupted."))
            raise
        finally:
            thread.join()
        if failed:
            raise failed[0]
        planned, reported = ray.get(coordinator.flow.remote())
        if reported < planned and not self.run.stopping:
            raise WorkerLost(f"{planned - reported} rows were on workers that were lost")

    def _dataset(self, ray: Any, partitions: Partitions, plan: RunPlan) -> Any:
        """read -> select -> plan -> blocks of `block_rows` x 2 -> the call stage's actor pool."""
        from ray.data import ActorPoolStrategy

        context = ray.data.DataContext.get_current()
        saved = context.target_max_block_size, context.max_errored_blocks
        context.target_max_block_size = BLOCK_BYTES  # the dataset keeps the context it was made with
        context.max_errored_blocks = -1  # a lost worker's blocks: the others go on; they run again after
        try:
            sel = self.run.spec.selection
            ds = self._read(ray, partitions)
            if sel.limit is not None and (sel.where is not None or sel.sample is not None):
                context.execution_options.preserve_order = True  # the first N selected rows
                ds = ds.map_batches(select_batch, fn_kwargs={"plan": plan}, **self._task_options()).limit(
                    sel.limit
                )
            ds = ds.map_batches(plan_batch, fn_kwargs={"plan": plan}, **self._task_options())
            ds = ds.repartition(target_num_rows_per_block=self.block_rows * 2)
            workers = self._workers(ray)
            small = (self.run.progress.rows_total or 0) < workers * self.block_rows * 4
            return ds.map_batches(
                Caller,
                fn_constructor_kwargs={"plan": plan},
                batch_size=self.block_rows,
                batch_format="pyarrow",
                compute=ActorPoolStrategy(
                    min_size=1 if small else workers,
                    max_size=workers,
                    max_tasks_in_flight_per_actor=4,  # queued: running ones are capped just below
                    max_concurrent_calls_per_actor=2,
                ),
                num_cpus=self._caller_cpus(ray, workers),
            )
        finally:
            context.target_max_block_size, context.max_errored_blocks = saved
            context.execution_options.preserve_order = False

    def _read(self, ray: Any, partitions: Partitions) -> Any:
        fs, _ = filesystem(partitions.uri)
        paths = [p if "://" not in p else filesystem(p)[1] for p in partitions.paths()]
        return ray.data.read_parquet(paths, filesystem=fs)

    def _plan(self, partitions: Partitions, selection: RowSelection, **more: Any) -> RunPlan:
        spec = self.run.spec
        store = self.run.store
        history = store.has_items(self.run.job.id)
        return RunPlan(
            run_id=uuid.uuid4().hex,
            job=self.run.job,
            partitions=partitions,
            folder=self.folder.uri,
            run=self.number,
            selection=selection,
            store_url=store.url if history else None,
            window=max(64, spec.limits.concurrency * 2),
            env=forwarded_env(),
            **more,
        )

    def _task_options(self) -> dict[str, Any]:
        return {"batch_size": PLAN_ROWS, "batch_format": "pyarrow", "num_cpus": 1}

    def _workers(self, ray: Any) -> int:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        wanted = self.workers or max(1, cpus // self._model_cpus(cpus) if self._local_model() else cpus)
        return max(1, min(wanted, self.run.spec.limits.concurrency))

    def _caller_cpus(self, ray: Any, workers: int) -> float:
        """An actor that sends HTTP requests needs little CPU; one that runs a local model reserves the
        cores its model's threads use."""
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return float(self._model_cpus(cpus)) if self._local_model() else 0.25

    def _local_model(self) -> bool:
        return any(m.startswith("local:") for m in self.run.ctx.models())

    @staticmethod
    def _model_cpus(cpus: int) -> int:
        return int(os.environ.get("SKUFORGE_RAY_MODEL_CPUS") or (2 if cpus >= 4 else 1))

    def _coordinator(self, ray: Any) -> Any:
        from skuforge.engine.ray_lease import Coordinator, Shares

        spec, store = self.run.spec, self.run.store
        options: dict[str, Any] = {"max_concurrency": 100_000, "num_cpus": 0, "max_restarts": 0}
        if store.url.startswith("sqlite") and not ray.util.client.ray.is_connected():
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            node = ray.get_runtime_context().get_node_id()  # the store file is on this node
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
        limits = spec.limits
        shares = Shares(
            concurrency=limits.concurrency,
            rpm=limits.rpm,
            tpm=limits.tpm,
            workers=self._workers(ray),
            max_cost=spec.max_cost,
        )
        actor = ray.remote(Coordinator).options(**options)
        return actor.remote(shares, store_url=store.url, job_id=self.run.job.id)

    def _index(self, ray: Any) -> tuple[list[Any], list[str]]:
        """The shards of finished keys from earlier runs' parts (none on a first run)."""
        from skuforge.engine.ray_index import SHARD_KEYS, KeyShard, split_entries

        parts = self.folder.parts()
        if not parts:
            return [], []
        names = [p.path.rsplit("/", 1)[-1] for p in parts]
        ids = {name: i for i, name in enumerate(names)}
        columns = ["key", "row_id", "step", "variant", "status", "part", "seq"]
        rows = sum(self.folder.read(p.path, ["seq"]).num_rows for p in parts)
        count = max(1, math.ceil(rows / (self.shard_keys or SHARD_KEYS)))
        shards = [ray.remote(KeyShard).options(num_cpus=0).remote() for _ in range(count)]
        pending = []
        for batch in latest(self.folder, columns=columns):
            statuses, keys = batch.column("status").to_pylist(), batch.column("key").to_pylist()
            keep = [i for i, (s, k) in enumerate(zip(statuses, keys, strict=True)) if s in FINISHED and k]
            for shard, arrays in zip(shards, split_entries(batch.take(keep), ids, count), strict=True):
                if len(arrays[0]):
                    pending.append(shard.add.remote(*arrays))
        ray.get(pending)
        self.index_entries = sum(ray.get([s.seal.remote() for s in shards]))
        return shards, names

    # -- what comes back ---------------------------------------------------------------------------------
    def _take(self, row: dict[str, Any]) -> bool:
        """Record one block's summary; True when it says the run must stop (budget, provider)."""
        if row["part"] in self.seen:
            return bool(row["stopped"])  # a block Ray ran again after its worker died: counted once
        if row["part"]:
            self.seen.add(row["part"])
        self._count(row)
        if row["part"]:
            self._ingest(row)
        elif row["review"]:
            self._record_review([ItemOutcome(**o) for o in row["review"]])
        if row["stopped"] == "error":
            raise SkuforgeError(
                f"A Ray worker failed: {row['message']}", "Run with SKUFORGE_DEBUG=1 and report it."
            )
        if row["stopped"] and not self.run.stopping:
            error: BudgetExceeded | ProviderUnavailable
            if row["stopped"] == "budget":
                error = BudgetExceeded(row["message"], "Raise the limit and resume.")
            else:
                error = ProviderUnavailable(row["message"], "Fix it and resume.")
            self.run.stop(error)
        self.run.emit()
        return bool(row["stopped"])

    def _count(self, row: dict[str, Any]) -> None:
        p = self.run.progress
        p.rows_done += row["rows"]
        p.reused += row["reused"]
        for name in ("done", "flagged", "failed", "skipped", "requests", "cache_hits", "input_tokens"):
            setattr(p, name, getattr(p, name) + row[name])
        p.output_tokens += row["output_tokens"]
        p.cached_input_tokens += row["cached_tokens"]
        p.cost += row["cost"]

    def _ingest(self, row: dict[str, Any]) -> None:
        if self.mode == "store":
            self._record(self.folder.records(row["part"]))
            self.folder.delete(row["part"])
        elif row["review"]:
            self._record_review([ItemOutcome(**o) for o in row["review"]])

    def _record(self, outcomes: list[Any]) -> None:
        self.run.store.record(self.run.job.id, outcomes)
        self.run.store.flush()

    def _record_review(self, outcomes: list[Any]) -> None:
        """Flagged and failed items go to the store (the review queue, `show`'s failures), except those the
        store already holds with the same key (a reviewer's decision on them is kept)."""
        if not outcomes:
            return
        store, job_id = self.run.store, self.run.job.id
        held = store.prior(job_id, [o.row_id for o in outcomes])
        fresh = [
            o for o in outcomes if (k := held.get((o.row_id, o.step, o.variant))) is None or k.key != o.key
        ]
        if fresh:
            self._record(fresh)

    def _conclude(self) -> None:
        stats = self.coordinator_stats
        if stats.get("exhausted") and not self.run.stopping:
            self.run.stop(
                BudgetExceeded("The cost limit was reached on the cluster.", "Raise it and resume.")
            )
        if not self.run.stopping:
            self._note(ingested=self.number)

    def _note(self, **values: Any) -> None:
        """Keep where this job's Ray output is, and how far its runs got, in the job's totals."""
        store, job_id = self.run.store, self.run.job.id
        totals = dict(store.get_job(job_id).totals or {})
        totals["ray"] = {**(totals.get("ray") or {}), **values}
        store.update_job(job_id, totals=totals)


class WorkerLost(Exception):
    """A pass of the dataset ended with rows that no worker reported back (their worker was lost)."""


class _Clock:
    """Logs how long each phase of the driver took (`SKUFORGE_DEBUG` or `-v` shows them)."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.seen: set[str] = set()
        self.lost_workers = 0

    def mark(self, what: str) -> None:
        now = time.perf_counter()
        log.info("ray run: %s after %.1f s (+%.1f s)", what, now - self.start, now - self.last)
        self.last = now

    def once(self, what: str) -> None:
        if what not in self.seen:
            self.seen.add(what)
            self.mark(what)


def _restart_counts(progress: Any, before: Any) -> int:
    """Rows done and items reused back to where the run started, before another attempt: the next attempt
    counts every finished row again. The items this attempt finished (returned) are then not reused ones."""
    finished = sum(
        getattr(progress, n) - getattr(before, n) for n in ("done", "flagged", "skipped", "reused")
    )
    progress.rows_done, progress.reused = before.rows_done, before.reused
    return finished


def _quiet(ray: Any) -> None:
    """No Ray Data progress bars or per-operator logs in the user's terminal (the run has its own)."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def forwarded_env() -> dict[str, str]:
    """skuforge's and the providers' variables, so workers on other nodes see the same settings."""
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
