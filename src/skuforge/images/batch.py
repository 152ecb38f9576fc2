"""Running an image pipeline over a catalog: a process pool, the job store for resume, a progress bar.

Each row's image goes through the pipeline in a worker process (models load once per worker). Each outcome
is recorded in the store as soon as it is known: `done` (the file is written and passes the rules, or no
rules were asked for), `flagged` (written, but `inspect` found failures) or `failed` (unreadable, refused,
too large ... with the reason). A rerun of the same command finds the job by its fingerprint and skips rows
already finished with the same item key; failed rows are tried again. The output catalog gets
`<column>_main` (the produced file) and `<column>_inspect` (pass / fail with reasons).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from skuforge.errors import CatalogError, SkuforgeError
from skuforge.images.fetch import FetchPolicy
from skuforge.images.opspec import InspectOp, OpBase, format_ops, parse_ops

STEP = "images"
CHUNK = 256
Progress = Callable[[str, str], None]  # (row_id, status)


@dataclass
class ImageTask:
    """One row's work, picklable for the worker process."""

    row_id: str
    index: int
    ref: str
    key: str
    name: str
    row: dict[str, Any]


@dataclass
class BatchReport:
    """What a batch did: the job, counts by status, and where the catalog was written."""

    job_id: str
    done: int = 0
    flagged: int = 0
    failed: int = 0
    skipped: int = 0  # finished in an earlier run of the job
    no_image: int = 0  # rows whose image cell is empty
    out: Path | None = None
    failures: list[str] = field(default_factory=list)


@dataclass
class BatchConfig:
    """Everything that decides a batch's outputs (and so its fingerprint)."""

    catalog: Path
    column: str
    ops: list[OpBase]
    out_dir: Path
    policy: FetchPolicy = field(default_factory=FetchPolicy)
    sheet: str | None = None
    id_column: str | None = None

    @property
    def spec(self) -> str:
        return format_ops(self.ops)

    def fingerprint(self) -> str:
        parts = [
            str(self.catalog.resolve()),
            self.column,
            self.spec,
            str(self.out_dir.resolve()),
            str(self.sheet),
            str(self.id_column),
        ]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def with_rules(ops: Sequence[OpBase] | str, rules: str | None) -> list[OpBase]:
    """The op chain with `inspect:<rules>` appended when rules are asked for and no inspect ends it."""
    chain = parse_ops(ops) if isinstance(ops, str) else list(ops)
    if rules and not (chain and isinstance(chain[-1], InspectOp) and chain[-1].rules == rules):
        chain.append(InspectOp(rules=rules))
    return chain


def item_key(ref: str, spec: str, base_dir: Path) -> str:
    """Hash of what the pipeline sees: the reference, the file's size and mtime for paths, and the ops."""
    stamp = ""
    if "://" not in ref:
        path = Path(ref.strip()).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if path.is_file():
            stat = path.stat()
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha256(f"{ref}\x1f{stamp}\x1f{spec}".encode()).hexdigest()[:32]


def safe_name(row_id: str, index: int) -> str:
    """A file name from a row id: safe characters only, unique through the row index."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", row_id).strip("._")[:80]
    return f"{index:06d}_{cleaned}" if cleaned else f"{index:06d}"


# -- worker side ---------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def init_worker(spec: str, out_dir: str, base_dir: str, policy: FetchPolicy, threads: int) -> None:
    """Per process: pin native thread pools (the pool already uses every core) and parse the ops once."""
    if threads:
        for var in ("OMP_NUM_THREADS", "SKUFORGE_IMAGE_THREADS"):
            os.environ[var] = str(threads)
        import cv2

        cv2.setNumThreads(threads)
    _WORKER.update(ops=parse_ops(spec), out_dir=Path(out_dir), base_dir=Path(base_dir), policy=policy)


def run_task(task: ImageTask) -> tuple[str, Any, str | None]:
    """(status, output, error) for one row; never raises, so one bad row never stops the batch."""
    from skuforge.images.pipeline import process_image

    try:
        output = process_image(
            task.ref,
            _WORKER["ops"],
            _WORKER["out_dir"],
            task.name,
            task.row,
            _WORKER["base_dir"],
            _WORKER["policy"],
        )
    except SkuforgeError as exc:
        return "failed", None, exc.message
    except MemoryError:
        return "failed", None, f"Image '{task.ref}' needs more memory than this machine has."
    except Exception as exc:  # an unexpected bug in one row is recorded, the batch goes on
        return "failed", None, f"{type(exc).__name__}: {exc} (image '{task.ref}')"
    report = output.get("inspect")
    return ("flagged" if report and not report["passed"] else "done"), output, None


# -- driver side ---------------------------------------------------------------------------------------
def find_or_create_job(store: Any, config: BatchConfig, job_id: str | None, fresh: bool) -> Any:
    """The job to run: the one named, else the newest with the same fingerprint, else a new one."""
    if job_id:
        return store.get_job(job_id)
    fingerprint = config.fingerprint()
    if not fresh and (job := store.find_job(fingerprint, kind="images")) is not None:
        return job
    return store.create_job(
        kind="images",
        catalog=str(config.catalog),
        recipe=config.spec,
        fingerprint=fingerprint,
        params={"column": config.column, "out_dir": str(config.out_dir)},
        selection={"sheet": config.sheet, "id_column": config.id_column},
        settings={"allow_hosts": list(config.policy.allow_hosts), "max_bytes": config.policy.max_bytes},
    )


def plan(
    catalog: Any, store: Any, job_id: str, config: BatchConfig, report: BatchReport, on_item: Progress | None
) -> Iterator[ImageTask]:
    """Tasks for rows not yet finished with the same key, read chunk by chunk (the catalog streams)."""
    from skuforge.store import FINISHED, ItemOutcome

    base_dir = config.catalog.parent
    for chunk in _chunks(catalog.rows(), CHUNK):
        known = {
            r.row_id: r
            for r in store.items_in_range(job_id, chunk[0].index, chunk[-1].index)
            if r.step == STEP
        }
        for row in chunk:
            ref = "" if row.data.get(config.column) is None else str(row.data[config.column]).strip()
            key = item_key(ref, config.spec, base_dir)
            if not ref:  # a product without a photo is not a failure: nothing to do
                store.record(
                    job_id,
                    [
                        ItemOutcome(
                            row_id=row.row_id,
                            row_index=row.index,
                            step=STEP,
                            key=key,
                            status="skipped",
                        )
                    ],
                )
                report.no_image += 1
                if on_item:
                    on_item(row.row_id, "skipped")
                continue
            previous = known.get(row.row_id)
            if (
                previous
                and previous.status in FINISHED
                and previous.key == key
                and previous.output
                and Path(previous.output["path"]).is_file()
            ):
                report.skipped += 1
                if on_item:
                    on_item(row.row_id, "skipped")
                continue
            yield ImageTask(
                row.row_id, row.index, ref, key, safe_name(row.row_id, row.index), _plain(row.data)
            )


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """Row data safe to pickle and store: JSON round trip (dates and decimals become text)."""
    return orjson.loads(orjson.dumps(data, default=str))


def _chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def execute(
    tasks: Iterator[ImageTask], config: BatchConfig, workers: int
) -> Iterator[tuple[ImageTask, tuple[str, Any, str | None]]]:
    """Run tasks inline (workers=0) or in a spawn-based process pool with a bounded queue."""
    args = (config.spec, str(config.out_dir), str(config.catalog.parent), config.policy)
    if workers <= 0:
        init_worker(*args, threads=0)
        for task in tasks:
            yield task, run_task(task)
        return
    yield from _pool(tasks, args, workers)


def _pool(
    tasks: Iterator[ImageTask], args: tuple[Any, ...], workers: int
) -> Iterator[tuple[ImageTask, tuple[str, Any, str | None]]]:
    import multiprocessing
    from concurrent.futures.process import BrokenProcessPool

    def start() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(*args, 1),
        )

    executor = start()
    pending: dict[Future[Any], ImageTask] = {}
    source = iter(tasks)
    try:
        while True:
            while len(pending) < workers * 2 and (task := next(source, None)) is not None:
                pending[executor.submit(run_task, task)] = task
            if not pending:
                return
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for future in finished:
                task = pending.pop(future)
                try:
                    yield task, future.result()
                except BrokenProcessPool:
                    broken = True
                    yield task, ("failed", None, f"The worker died on image '{task.ref}' (out of memory?).")
            if broken:
                for task in pending.values():
                    yield task, ("failed", None, f"The worker pool broke while on image '{task.ref}'; rerun.")
                pending.clear()
                executor.shutdown(cancel_futures=True)
                executor = start()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def run_batch(
    config: BatchConfig,
    *,
    workers: int | None = None,
    job_id: str | None = None,
    store: Any = None,
    fresh: bool = False,
    on_item: Progress | None = None,
) -> BatchReport:
    """Process every row's image; record each outcome at once; return the counts."""
    from skuforge.catalog import open_catalog
    from skuforge.store import ItemOutcome, open_store

    catalog = open_catalog(config.catalog, sheet=config.sheet, id_column=config.id_column)
    if config.column not in catalog.columns:
        raise CatalogError(
            f"Image column '{config.column}' is not in {catalog.path.name}.",
            f"Columns there: {', '.join(catalog.columns)}. Pass the right one with --image-column.",
        )
    store = store or open_store()
    job = find_or_create_job(store, config, job_id, fresh)
    report = BatchReport(job.id)
    store.set_state(job.id, "running")
    workers = (os.cpu_count() or 1) if workers is None else workers
    try:
        for task, (status, output, error) in execute(
            plan(catalog, store, job.id, config, report, on_item), config, workers
        ):
            store.record(
                job.id,
                [
                    ItemOutcome(
                        row_id=task.row_id,
                        row_index=task.index,
                        step=STEP,
                        key=task.key,
                        status=status,
                        output=output,
                        error=error,
                        attempts=1,
                        meta={"image": task.ref},
                    )
                ],
            )
            setattr(report, status, getattr(report, status) + 1)
            if error and len(report.failures) < 20:
                report.failures.append(f"{task.row_id}: {error}")
            if on_item:
                on_item(task.row_id, status)
    except BaseException:
        store.flush()
        store.set_state(job.id, "paused")
        raise
    store.flush()
    store.set_state(job.id, "done")
    return report


def inspect_text(item: Any) -> str:
    """The `<column>_inspect` cell: 'pass (rules)', 'fail (rules): reason; reason' or 'error: reason'."""
    if item is None:
        return ""
    if item.status == "failed":
        return f"error: {item.error}"
    report = (item.output or {}).get("inspect")
    if not report:
        return "done"
    if report["passed"]:
        return f"pass ({report['rules']})"
    return f"fail ({report['rules']}): " + "; ".join(report["failures"])


def write_output(config: BatchConfig, store: Any, job_id: str, out: Path) -> Any:
    """Write the catalog again with `<column>_main` and `<column>_inspect`; failed rows also as failures."""
    from skuforge.catalog import open_catalog, write_catalog

    catalog = open_catalog(config.catalog, sheet=config.sheet, id_column=config.id_column)
    main_col, inspect_col = f"{config.column}_main", f"{config.column}_inspect"
    columns = catalog.columns + [c for c in (main_col, inspect_col) if c not in catalog.columns]
    failures: list[dict[str, Any]] = []

    def rows() -> Iterator[dict[str, Any]]:
        for chunk in _chunks(catalog.rows(), CHUNK):
            found = {
                r.row_id: r
                for r in store.items_in_range(job_id, chunk[0].index, chunk[-1].index)
                if r.step == STEP
            }
            for row in chunk:
                item = found.get(row.row_id)
                path = (item.output or {}).get("path") if item and item.status != "failed" else None
                if item is not None and item.status == "failed":
                    failures.append(
                        {"row_id": row.row_id, "line": row.line, "step": STEP, "reason": item.error}
                    )
                yield {**row.data, main_col: path or "", inspect_col: inspect_text(item)}

    data = list(rows()) if out.suffix.lower() == ".xlsx" else rows()
    return write_catalog(out, columns, data, failures=failures)
