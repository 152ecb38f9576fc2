"""The run's live progress bar (rows/s, ETA, tokens, cost so far) and its closing summary."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from skuforge.engine.progress import RunProgress

console = Console(stderr=True)


def money(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def run_cost(p: RunProgress) -> str:
    """The run's cost so far: 'unknown' for a model without a price (never a misleading $0)."""
    if p.cost_known:
        return money(p.cost)
    return "unknown (no price for the model)" if not p.cost else f"{money(p.cost)} + unknown"


def cache_share(p: RunProgress) -> str:
    """The share of input tokens the provider read from its prompt cache, e.g. '62% of 1,234,567'."""
    if not p.input_tokens:
        return "-"
    share = p.cached_input_tokens / p.input_tokens
    return f"{share:.0%} of {p.input_tokens:,} input tokens read from the provider's cache"


@contextmanager
def live_progress(title: str, *, quiet: bool = False) -> Iterator[callable]:  # type: ignore[valid-type]
    """Yield a callback for the runner's progress events that redraws at most ten times a second."""
    if quiet:
        yield lambda _p: None
        return
    wide = console.width >= 140  # a narrow terminal keeps rows, rate, ETA and cost; drops the rest
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=None if wide else 16),
        MofNCompleteColumn(),
        *([TaskProgressColumn()] if wide else []),
        TextColumn("{task.fields[rate]} rows/s"),
        *([TimeElapsedColumn()] if wide else []),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        *([TextColumn("{task.fields[tokens]} tok")] if wide else []),
        TextColumn("{task.fields[cost]}"),
        TextColumn("[red]{task.fields[failed]}"),
    ]
    bar = Progress(
        *columns,
        console=console,
        transient=False,
    )
    task = bar.add_task(title, total=None, rate="0.0", tokens="0", cost=money(0), failed="")
    last = 0.0

    def update(p: RunProgress) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < 0.1 and p.state == "running":
            return
        last = now
        cost = money(p.cost) if p.cost_known else "cost unknown"
        if p.projected_cost is not None and p.cost_known:
            cost += f" of ~{money(p.projected_cost)}"
            if wide:
                cost += f" (~{money(max(0.0, p.projected_cost - p.cost))} to go)"
        bar.update(
            task,
            completed=p.rows_done,
            total=p.rows_total,
            rate=f"{p.rows_per_s:.1f}",
            tokens=f"{p.input_tokens + p.output_tokens:,}",
            cost=cost,
            failed=f"{p.failed} failed" if p.failed else "",
        )

    with bar:
        yield update


def summary_table(p: RunProgress, *, title: str = "Run summary") -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("job", p.job_id),
        ("state", p.state),
        ("rows", f"{p.rows_done:,}"),
        ("items", f"{p.done:,} done, {p.flagged:,} flagged, {p.failed:,} failed, {p.skipped:,} skipped"),
        ("reused", f"{p.reused:,} items finished in an earlier run (no request)"),
        ("requests", f"{p.requests:,} sent, {p.cache_hits:,} answered from the cache"),
        ("tokens", f"{p.input_tokens:,} in, {p.output_tokens:,} out"),
        ("prompt cache", cache_share(p)),
        ("cost", run_cost(p)),
        ("time", f"{p.elapsed:,.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table
