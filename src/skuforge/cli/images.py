"""`skuforge images`: run an image pipeline over a catalog's image column, resumable, in a process pool."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

if TYPE_CHECKING:
    from skuforge.images.batch import BatchReport

OPS_HELP = (
    "The op chain, e.g. 'cutout,background:white,compose:fill=0.85,size=1600,format=jpeg,max_kb=500'. "
    "Ops: upscale, cutout, background, compose, inspect, restyle."
)


def images(
    catalog: Annotated[Path, typer.Argument(help="The catalog: .xlsx, .csv/.tsv, .jsonl or .parquet.")],
    image_column: Annotated[str, typer.Option("--image-column", help="Column with image paths or URLs.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for the produced images.")],
    ops: Annotated[str, typer.Option("--ops", help=OPS_HELP)] = "cutout,background:white,compose",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the catalog with <col>_main and <col>_inspect columns here."),
    ] = None,
    rules: Annotated[
        str | None,
        typer.Option(
            "--rules",
            help="Inspect results against a rule set: amazon-main, white-background, or a .yaml file.",
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host", help="Allow fetching from this private host/address/network (repeatable)."
        ),
    ] = None,
    max_mb: Annotated[float, typer.Option("--max-mb", help="Largest image download, in MB.")] = 20.0,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Worker processes (default: all cores; 0 runs inline).")
    ] = None,
    job: Annotated[str | None, typer.Option("--job", help="Resume this job id.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start a new job instead of resuming.")] = False,
    sheet: Annotated[str | None, typer.Option("--sheet", help="The sheet of an .xlsx.")] = None,
    id_column: Annotated[
        str | None, typer.Option("--id-column", help="Column that identifies a product.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Turn product photos into marketplace images: cut out, replace background, compose, inspect."""
    from skuforge.images.batch import BatchConfig, run_batch, with_rules, write_output
    from skuforge.images.fetch import FetchPolicy
    from skuforge.store import open_store

    config = BatchConfig(
        catalog=catalog,
        column=image_column,
        ops=with_rules(ops, rules),
        out_dir=out_dir,
        policy=FetchPolicy(allow_hosts=tuple(allow_host or ()), max_bytes=int(max_mb * 1024 * 1024)),
        sheet=sheet,
        id_column=id_column,
    )
    console = Console(stderr=True)
    store = open_store()
    try:
        with Progress(
            TextColumn("[bold]images[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeRemainingColumn(),
            console=console,
            disable=quiet,
            transient=False,
        ) as bar:
            counts = {"done": 0, "flagged": 0, "failed": 0, "skipped": 0}
            task = bar.add_task("images", total=None, counts="")

            def on_item(row_id: str, status: str) -> None:
                counts[status] += 1
                bar.update(task, advance=1, counts=" ".join(f"{k} {v}" for k, v in counts.items() if v))

            report = run_batch(config, workers=workers, job_id=job, store=store, fresh=fresh, on_item=on_item)
        if out is not None:
            written = write_output(config, store, report.job_id, out)
            report.out = written.path
    finally:
        store.close()
    _summary(report, Console())


def _summary(report: BatchReport, console: Console) -> None:
    console.print(
        f"Job {report.job_id}: {report.done} done, {report.flagged} flagged (written, failing the rules), "
        f"{report.failed} failed, {report.skipped} already finished, {report.no_image} without an image.",
        highlight=False,
        soft_wrap=True,
    )
    for line in report.failures:
        console.print(f"  failed {line}", highlight=False, markup=False, soft_wrap=True)
    if report.out:
        console.print(f"Catalog written to {report.out}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("images")(images)
