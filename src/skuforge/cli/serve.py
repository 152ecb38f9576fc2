"""`skuforge serve`, `skuforge worker` and `skuforge schedule add|list|remove`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from skuforge.config import load_settings

out = Console()
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Database URL (default SKUFORGE_STORE, else SQLite under SKUFORGE_HOME), "
        "e.g. postgresql+psycopg://user@host/db.",
    ),
]
schedule_group = typer.Typer(
    help="Recurring runs on a cron expression (fired by the worker).", no_args_is_help=True
)


def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 exposes it to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    store: StoreOpt = None,
    max_upload_mb: Annotated[int, typer.Option(help="Largest catalog upload accepted, in MB.")] = 200,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run queued jobs in this process.")
    ] = True,
    concurrency: Annotated[int, typer.Option(help="Jobs the in-process worker runs at once.")] = 1,
    trial_rows: Annotated[int, typer.Option(help="Default number of products in a trial.")] = 20,
    insecure_cookies: Annotated[
        bool,
        typer.Option(help="Send the session cookie over plain HTTP to a non-local host (not recommended)."),
    ] = False,
) -> None:
    """Start the REST API and the web console (and, by default, the background worker)."""
    from skuforge.errors import require

    uvicorn = require("uvicorn", "skuforge serve", "service")
    from skuforge import config
    from skuforge.service import ServiceOptions, create_app
    from skuforge.service.auth import TOKEN_FILE, load_token

    settings = load_settings()
    token, created = load_token(config.home())
    options = ServiceOptions(
        token=token,
        max_upload_bytes=max_upload_mb * 1024 * 1024,
        secure_cookies=not insecure_cookies,
        run_worker=worker,
        worker_concurrency=concurrency,
        trial_rows=trial_rows,
    )
    app = create_app(options, store_url=store, settings=settings)
    if created:
        out.print(f"Access token (shown once; kept in {config.home() / TOKEN_FILE}):\n[bold]{token}[/]")
    elif not os.environ.get("SKUFORGE_TOKEN"):
        out.print(f"Access token: see {config.home() / TOKEN_FILE}")
    out.print(f"Console: [bold]http://{host}:{port}/[/]   API reference: http://{host}:{port}/docs")
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)


def worker(
    store: StoreOpt = None,
    concurrency: Annotated[int, typer.Option(help="Jobs this worker runs at once.")] = 1,
    lease: Annotated[
        float, typer.Option(help="Seconds without a heartbeat before another worker takes a job over.")
    ] = 60.0,
    poll: Annotated[float, typer.Option(help="Seconds between looks at the queue.")] = 0.5,
    schedules: Annotated[
        bool, typer.Option("--schedules/--no-schedules", help="Also fire due schedules.")
    ] = True,
) -> None:
    """Run queued jobs from the store, as a separate process (several may share one store)."""
    from skuforge.service.worker import Worker
    from skuforge.store import open_store

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings()
    db = open_store(store or settings.store_url())
    runner = Worker(
        db, settings, concurrency=concurrency, poll_s=poll, lease_s=lease, run_schedules=schedules
    )
    out.print(
        f"Worker {runner.name} on {db.dialect} store; Ctrl-C stops it (running jobs go back to the queue)."
    )
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        asyncio.run(runner.run_forever())
    except KeyboardInterrupt:
        pass
    finally:
        db.close()


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    """Deployments stop workers with SIGTERM: treat it as Ctrl-C so running jobs go back to the queue."""
    raise KeyboardInterrupt


@schedule_group.command("add")
def schedule_add(
    name: Annotated[str, typer.Argument(help="A name for the schedule.")],
    cron: Annotated[str, typer.Option(help="Cron expression in UTC, e.g. '0 2 * * *' (02:00 daily).")],
    catalog: Annotated[str, typer.Option(help="The catalog file to run (re-read at every firing).")],
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="Recipe name.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="provider:model.")] = None,
    where: Annotated[str | None, typer.Option(help="SQL filter over the catalog's columns.")] = None,
    store: StoreOpt = None,
) -> None:
    """Add a recurring run: only new and changed rows are generated again at each firing."""
    from pathlib import Path

    from skuforge.errors import CatalogError
    from skuforge.service import jobs as job_ops
    from skuforge.service import schedules
    from skuforge.store import open_store

    settings = load_settings()
    path = Path(catalog).expanduser().resolve()
    if not path.is_file():
        raise CatalogError(f"Catalog file not found: {catalog}", "Give the path of an existing catalog file.")
    req = job_ops.JobRequest(catalog="c-000000000000", recipe=recipe, model=model, where=where)
    spec = job_ops.build_spec(req, str(path), settings, kind="run", trial_rows=0)
    db = open_store(store or settings.store_url())
    try:
        entry = schedules.add(db, name, cron, spec)
    finally:
        db.close()
    out.print(f"Added schedule [bold]{entry['id']}[/]; next run {entry['next_run_at']:.0f} (epoch s, UTC).")


@schedule_group.command("list")
def schedule_list(store: StoreOpt = None) -> None:
    """List schedules with their next run."""
    import time

    from skuforge.service import schedules
    from skuforge.store import open_store

    db = open_store(store or load_settings().store_url())
    try:
        entries = schedules.list_all(db)
    finally:
        db.close()
    table = Table("id", "name", "cron", "recipe", "model", "next run (UTC)", "last job")
    for e in entries:
        nxt = (
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(e["next_run_at"])) if e["next_run_at"] else "disabled"
        )
        table.add_row(
            e["id"],
            e["name"],
            e["cron"],
            e["spec"]["recipe"],
            e["spec"]["model"],
            nxt,
            e["last_job_id"] or "-",
        )
    out.print(table)


@schedule_group.command("remove")
def schedule_remove(
    schedule_id: Annotated[str, typer.Argument(help="The schedule id.")], store: StoreOpt = None
) -> None:
    """Remove a schedule."""
    from skuforge.service import schedules
    from skuforge.store import open_store

    db = open_store(store or load_settings().store_url())
    try:
        schedules.remove(db, schedule_id)
    finally:
        db.close()
    out.print(f"Removed schedule {schedule_id}.")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
    app.add_typer(schedule_group, name="schedule")
