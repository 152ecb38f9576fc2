"""`skuforge trial`: try a recipe on a sample, preview the results, and see what the full run will cost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from skuforge.cli.display import live_progress, money
from skuforge.cli.run import (
    CatalogArg,
    ConcurrencyOpt,
    EncodingOpt,
    HeaderOpt,
    IdOpt,
    JsonOpt,
    ModelOpt,
    PriceOpt,
    RecipeDirOpt,
    RecipeOpt,
    RpmOpt,
    SeedOpt,
    SetOpt,
    SheetOpt,
    TpmOpt,
    WhereOpt,
    merged_limits,
    model_choice,
    out,
    parse_sets,
    preflight,
    recipe_ref,
    require_catalog,
    sheet_value,
)
from skuforge.config import load_settings
from skuforge.engine.context import JobContext
from skuforge.engine.report import duration
from skuforge.engine.spec import Selection
from skuforge.providers.prices import parse_price
from skuforge.store import open_store

TrialSampleOpt = Annotated[
    int, typer.Option("--sample", "-n", help="Products to try, spread over categories.")
]
ReportOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Where to write the HTML report (default: trial-JOB.html).")
]
CELL_CHARS = 160


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode() if value is not None else ""
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def preview_table(result: Any) -> Table:
    """Inputs, outputs and verdicts of the trial's products, one line per step and variant."""
    table = Table("product", "input", "output", "result", title="Trial preview", title_justify="left")
    colours = {"done": "green", "flagged": "yellow", "failed": "red", "skipped": "dim"}
    for item in result.preview:
        inputs = "\n".join(f"{k}: {_cell(v)}" for k, v in item.inputs.items() if v not in (None, ""))
        for i, o in enumerate(item.outputs or [{}]):
            label = f"{o.get('step', '')}@{o['variant']}: " if o.get("variant") else ""
            verdict = f"[{colours.get(o.get('status', ''), 'white')}]{o.get('status', '-')}[/]"
            reason = f"\n{_cell(o['error'])}" if o.get("error") else ""
            table.add_row(
                item.row_id if i == 0 else "", inputs if i == 0 else "",
                label + _cell(o.get("output")), verdict + reason,
            )  # fmt: skip
    return table


def projection_table(p: Any) -> Table:
    table = Table(show_header=False, title="Projected full run", title_justify="left")
    rows_total = f"{p.rows_total:,}" if p.rows_total is not None else "unknown"
    latency = f", {p.latency_s:.2f} s per request measured" if p.latency_s is not None else ""
    wall = f"~{duration(p.wall_s)} (bound by {p.wall_bound}{latency})" if p.wall_s is not None else "unknown"
    rows = [
        ("rows", f"{rows_total} selected, {p.items_to_send:,} items to send"),
        ("cost", f"~{money(p.cost_expected)} (90%: {money(p.cost_low)} – {money(p.cost_high)}), "
                 f"prices as of {p.price_as_of}"),
        ("per item", f"{p.input_tokens.mean:,.0f} ± {p.input_tokens.sd:,.0f} tokens in, "
                     f"{p.output_tokens.mean:,.0f} ± {p.output_tokens.sd:,.0f} out, "
                     f"{money(p.cost_per_item.mean)}"),
        ("requests", f"{p.requests:,} ({p.tokens_total:,} tokens)"),
        ("time", wall),
    ]  # fmt: skip
    for name, value in rows:
        table.add_row(name, value)
    return table


def trial(
    catalog: CatalogArg,
    recipe: RecipeOpt = "attributes",
    model: ModelOpt = None,
    sample: TrialSampleOpt = 20,
    seed: SeedOpt = None,
    where: WhereOpt = None,
    sets: SetOpt = None,
    report: ReportOpt = None,
    sheet: SheetOpt = None,
    header_row: HeaderOpt = None,
    id_column: IdOpt = None,
    encoding: EncodingOpt = None,
    concurrency: ConcurrencyOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    recipe_dir: RecipeDirOpt = None,
    as_json: JsonOpt = False,
    price: PriceOpt = None,
) -> None:
    """Try a recipe on a sample spread over categories: preview, checks, and the projected cost and time of
    the full run. Start the full run with `skuforge run --from-trial JOB`."""
    from skuforge.engine.report import write_report
    from skuforge.engine.trial import run_trial, trial_spec

    settings = load_settings()
    require_catalog(catalog)
    spec = trial_spec(
        catalog, sample=sample, recipe=recipe_ref(recipe or "attributes"),
        model=model_choice(model, settings, recipe_ref(recipe or "attributes"), recipe_dir, as_json),
        params=parse_sets(sets),
        selection=Selection(sheet=sheet_value(sheet), header_row=header_row or 1, id_column=id_column,
                            encoding=encoding, where=where, seed=seed or 0),
        limits=merged_limits(settings, concurrency=concurrency, rpm=rpm, tpm=tpm),
        recipe_dirs=[str(d.resolve()) for d in recipe_dir or []],
        price=price,
    )  # fmt: skip
    if price is not None:
        parse_price(price)
    ctx = JobContext.from_spec(spec, settings)
    ctx.check_ready()  # every input error, then the model's server, before any progress is drawn
    preflight(ctx.models(), settings)
    store = open_store(settings.store_url())
    try:
        with live_progress(f"trial · {spec.recipe} · {spec.model}", quiet=as_json) as update:
            result = run_trial(store, spec, settings=settings, on_progress=update)
    finally:
        store.close()
    path = write_report(result, report or Path(f"trial-{result.job.id}.html"))
    if as_json:
        out.print_json(orjson.dumps({**result.as_dict(), "report": str(path)}, default=str).decode())
        return
    out.print(preview_table(result))
    checks = ", ".join(f"{n}: {c['passed']} passed, {c['flagged']} flagged, {c['failed']} failed"
                       for n, c in result.checks.items())  # fmt: skip
    out.print(f"Checks: {checks or 'none'}")
    out.print(projection_table(result.projection))
    for note in result.projection.notes:
        out.print(f"[yellow]{note}[/]")
    out.print(f"Report: [bold]{path}[/]")
    out.print(f"Full run: skuforge run --from-trial {result.job.id} --max-cost N")


def register(app: typer.Typer) -> None:
    app.command()(trial)
