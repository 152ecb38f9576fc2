"""`skuforge run`, `resume`, `jobs`, `show` and `export`: the batch workflow from a terminal."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from skuforge.cli.display import console, live_progress, money, summary_table
from skuforge.config import Limits, Settings, load_settings
from skuforge.engine.progress import RunProgress
from skuforge.engine.spec import JobSpec, Selection
from skuforge.errors import UserError
from skuforge.store import Job, Store, open_store

out = Console()

CatalogArg = Annotated[Path, typer.Argument(help="The catalog: .xlsx, .csv/.tsv, .jsonl or .parquet.")]
RecipeOpt = Annotated[
    str | None, typer.Option("--recipe", "-r", help="A built-in recipe name or a recipe .yaml file.")
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="provider:model, e.g. local:qwen2.5-0.5b, openai:gpt-4o-mini, fake:"),
]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Where to write the enriched catalog.")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="A recipe parameter, key=value (repeatable).")
]
WhereOpt = Annotated[str | None, typer.Option("--where", help="SQL predicate over the catalog's columns.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Take the first N selected rows.")]
SampleOpt = Annotated[
    int | None, typer.Option("--sample", help="Take N rows at random, spread over categories.")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed for --sample.")]
SheetOpt = Annotated[
    str | None, typer.Option("--sheet", help="The sheet of an .xlsx (name or 1-based number).")
]
HeaderOpt = Annotated[
    int | None, typer.Option("--header-row", help="The row that holds the column names (default 1).")
]
IdOpt = Annotated[str | None, typer.Option("--id-column", help="The column that identifies a product.")]
EncodingOpt = Annotated[str | None, typer.Option("--encoding", help="Force the CSV encoding, e.g. gb18030.")]
ConcurrencyOpt = Annotated[int | None, typer.Option("--concurrency", help="Requests in flight at once.")]
RpmOpt = Annotated[float | None, typer.Option("--rpm", help="Requests per minute limit.")]
TpmOpt = Annotated[float | None, typer.Option("--tpm", help="Tokens per minute limit.")]
TimeoutOpt = Annotated[float | None, typer.Option("--timeout", help="Seconds per request before a retry.")]
MaxCostOpt = Annotated[
    float | None, typer.Option("--max-cost", help="Stop (and pause the job) before spending more.")
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not answer from the response cache.")]
RecipeDirOpt = Annotated[
    list[Path] | None, typer.Option("--recipe-dir", help="A directory of your own recipes.")
]
ReviewSampleOpt = Annotated[
    float,
    typer.Option("--review-sample", min=0.0, max=1.0, help="Share of clean items also sent to review, 0-1."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ModeOpt = Annotated[
    str | None,
    typer.Option("--mode", help="online (requests now) or batch (the provider's batch API: half price)."),
]
ExecutorOpt = Annotated[
    str | None, typer.Option("--executor", help="local (this process) or ray (Ray Data; the 'ray' extra).")
]
RayAddressOpt = Annotated[
    str | None, typer.Option("--ray-address", help="An existing Ray cluster, e.g. ray://head:10001 or auto.")
]
PriceOpt = Annotated[
    str | None,
    typer.Option(
        "--price", help="USD per 1M input/output tokens for a model the price table lacks, e.g. 0.25/2.00."
    ),
]
FromTrialOpt = Annotated[
    str | None,
    typer.Option("--from-trial", help="Run in full what this trial job tried (no sample, no CATALOG)."),
]


def parse_sets(pairs: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set '{pair}' is not key=value.", "Example: --set locales=de,fr")
        params[key.strip()] = value.strip()
    return params


def merged_limits(settings: Settings, **flags: Any) -> Limits:
    given = {k: v for k, v in flags.items() if v is not None}
    return settings.limits.model_copy(update=given)


def sheet_value(sheet: str | None) -> str | int | None:
    return int(sheet) - 1 if sheet is not None and sheet.isdigit() else sheet


def require_catalog(catalog: Path) -> None:
    """Fail before anything else when the catalog file is not there."""
    if not catalog.exists():
        from skuforge.errors import CatalogError

        raise CatalogError(
            f"Catalog file not found: {catalog}", "Check the path; supported: xlsx, csv, tsv, jsonl, parquet."
        )


def recipe_ref(recipe: str) -> str:
    """A built-in or user recipe name as given; a recipe file as an absolute path (jobs outlive the cwd)."""
    return str(Path(recipe).resolve()) if recipe.endswith((".yaml", ".yml")) else recipe


def model_choice(
    model: str | None, settings: Settings, recipe: str, recipe_dir: list[Path] | None, quiet: bool
) -> str:
    """The run's model (`providers.choice`), with a note when the recipe's own local model decided it."""
    from skuforge.providers.choice import choose_model
    from skuforge.recipes import load_recipe

    choice = choose_model(model, settings, load_recipe(recipe, [*settings.recipe_dirs, *(recipe_dir or [])]))
    if choice.note and not quiet:
        console.print(f"[yellow]Note:[/] {choice.note}", highlight=False)
    return choice.model


def default_out(catalog: Path) -> Path:
    from skuforge.catalog import output_path_for

    return Path(output_path_for(catalog))


def start_job(store: Store, spec: JobSpec) -> tuple[Job, bool]:
    """The job for this spec: the existing one (continued) or a new one."""
    existing = store.find_job(spec.fingerprint())
    if existing is not None:
        store.update_job(existing.id, settings=spec.settings_blob(), out=spec.out)
        return store.get_job(existing.id), True
    return store.create_job(**spec.job_fields(), state="draft"), False  # run here, never by a worker


@contextmanager
def long_run_gc() -> Iterator[None]:
    """Freeze what start-up allocated and collect young objects less often during a run.

    A run allocates millions of short-lived objects; with the default thresholds the collector keeps
    re-scanning the large, long-lived module graph. This cut client CPU per request by ~30% in bench S5.
    """
    import gc

    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def execute(store: Store, job: Job, settings: Settings, *, quiet: bool, as_json: bool = False) -> RunProgress:
    """Run the job on its executor with a progress bar, then export it and print the summary."""
    from skuforge.engine.executors import make_executor

    title = f"{Path(job.recipe).stem} · {job.model}"
    runner = make_executor(store, job, settings)
    runner.prepare()  # catalog, recipe, output, selection, prices: every input error before any request
    preflight(runner.ctx.models(), settings)
    with live_progress(title, quiet=quiet or as_json) as update:
        runner.on_progress = update
        try:
            with long_run_gc():
                progress = asyncio.run(runner.run())
        finally:
            store.flush()
    if runner.stopped_reason == "budget":
        console.print(
            f"[yellow]Stopped before exceeding the cost limit of {money(runner.budget.limit)}.[/] "
            f"Nothing is lost. Raise it and continue with: skuforge resume {job.id} --max-cost N"
        )
    finish(store, job, progress, as_json=as_json, quiet=quiet, calls=runner.call_stats.snapshot())
    return progress


def preflight(models: list[str], settings: Settings) -> None:
    """Ask each model's server whether the URL, the key and the model name work (one cheap request per
    hosted provider; nothing for local and fake models) and print what is worth knowing, before any
    progress is drawn. Raises ProviderUnavailable or ConfigError with what to do."""
    from skuforge.providers.preflight import preflight_model

    for model in models:
        for note in preflight_model(model, settings):
            console.print(f"[yellow]Note:[/] {note}")


def finish(
    store: Store,
    job: Job,
    progress: RunProgress,
    *,
    as_json: bool,
    quiet: bool,
    calls: dict[str, float] | None = None,
) -> None:
    from skuforge.engine.export import export_job

    job = store.get_job(job.id)
    exported = None
    if job.out and progress.state == "done":
        exported = export_job(store, job, job.out)
    if as_json:
        data = progress.as_dict()
        data["out"] = str(exported.path) if exported else None
        data["calls"] = calls  # what the wrappers did: retries, timeouts, hedges, 429s
        out.print_json(orjson.dumps(data).decode())
        return
    if not quiet:
        console.print(summary_table(progress))
    if exported:
        note = f", {exported.failures} failures in a separate sheet/file" if exported.failures else ""
        console.print(f"Wrote {exported.rows:,} rows to [bold]{exported.path}[/]{note}.")


TRIAL_DEFINES = ("recipe", "model", "sets", "where", "limit", "sample", "seed", "sheet", "header_row",
                 "id_column", "encoding", "recipe_dir")  # fmt: skip
"""`run` options that a trial's full run takes from the trial itself; given with --from-trial, refused."""


def run_from_trial(trial_id: str, given: dict[str, Any], settings: Settings) -> None:
    """The full run of a trial: its catalog, recipe, model, params and selection without the sample, with
    this command's call settings (limits, cache, budget, price, review share, executor, output)."""
    from skuforge.engine.trial import promote

    clash = [name for name in TRIAL_DEFINES if given.get(name) not in (None, [], False)]
    if clash or given.get("catalog") is not None:
        what = ", ".join(f"--{n.replace('_', '-')}" for n in clash) or "a CATALOG"
        raise UserError(
            f"--from-trial runs exactly what trial {trial_id} tried; {what} cannot change it.",
            "Drop those options, or run a new trial with them: skuforge trial CATALOG ... --sample N.",
        )
    store = open_store(settings.store_url())
    try:
        trial = store.get_job(trial_id)
        target = given["out_path"] or default_out(Path(trial.catalog))
        job = promote(store, trial_id, out=str(target.resolve()), **call_settings(settings, given))
        if not given["quiet"] and not given["as_json"]:
            console.print(
                f"Full run [bold]{job.id}[/] of trial {trial_id}: its products are not paid for again."
            )
        execute(store, job, settings, quiet=given["quiet"], as_json=given["as_json"])
    finally:
        store.close()


def call_settings(settings: Settings, given: dict[str, Any]) -> dict[str, Any]:
    """How a run calls the model, from `run`'s options: limits, cache, budget, price, review share and
    executor (a JobSpec's fields that do not change what is generated)."""
    limits = merged_limits(
        settings,
        concurrency=given["concurrency"],
        rpm=given["rpm"],
        tpm=given["tpm"],
        timeout_s=given["timeout"],
    )
    if given["price"] is not None:
        from skuforge.providers.prices import parse_price

        parse_price(given["price"])  # a typo fails now, not when the first price is needed
    fields: dict[str, Any] = {
        "limits": limits,
        "cache": not given["no_cache"],
        "max_cost": given["max_cost"],
        "review_sample": given["review_sample"],
        "price": given["price"],
    }
    return {**fields, **executor_choice(given["mode"], given["executor"], given["ray_address"])}


def run(
    catalog: Annotated[
        Path | None, typer.Argument(help="The catalog: .xlsx, .csv/.tsv, .jsonl or .parquet.")
    ] = None,
    recipe: RecipeOpt = None,
    model: ModelOpt = None,
    out_path: OutOpt = None,
    sets: SetOpt = None,
    where: WhereOpt = None,
    limit: LimitOpt = None,
    sample: SampleOpt = None,
    seed: SeedOpt = None,
    sheet: SheetOpt = None,
    header_row: HeaderOpt = None,
    id_column: IdOpt = None,
    encoding: EncodingOpt = None,
    concurrency: ConcurrencyOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    timeout: TimeoutOpt = None,
    max_cost: MaxCostOpt = None,
    no_cache: NoCacheOpt = False,
    recipe_dir: RecipeDirOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    review_sample: ReviewSampleOpt = 0.0,
    from_trial: FromTrialOpt = None,
    mode: ModeOpt = None,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
    price: PriceOpt = None,
) -> None:
    """Run a recipe over a catalog and write the enriched catalog.

    Running the same command again continues the same job: finished items are not sent again, and rows
    whose prompts changed are regenerated.
    """
    given = dict(locals())
    settings = load_settings()
    if from_trial is not None:
        return run_from_trial(from_trial, given, settings)
    if catalog is None:
        raise UserError(
            "Which catalog? Give its path, e.g. skuforge run products.xlsx --recipe title.",
            "Or run what a trial tried: skuforge run --from-trial TRIAL_JOB_ID.",
        )
    require_catalog(catalog)
    choice = model_choice(model, settings, recipe_ref(recipe or "attributes"), recipe_dir, quiet or as_json)
    spec = JobSpec.create(
        catalog,
        recipe=recipe_ref(recipe or "attributes"),
        model=choice,
        params=parse_sets(sets),
        selection=Selection(
            sheet=sheet_value(sheet),
            header_row=header_row or 1,
            id_column=id_column,
            encoding=encoding,
            where=where,
            limit=limit,
            sample=sample,
            seed=seed or 0,
        ),
        recipe_dirs=[str(d.resolve()) for d in recipe_dir or []],
        out=str((out_path or default_out(catalog)).resolve()),
        **call_settings(settings, given),
    )
    store = open_store(settings.store_url())
    try:
        job, continued = start_job(store, spec)
        if continued and not (quiet or as_json):
            console.print(f"Continuing job [bold]{job.id}[/]: finished items are not sent again.")
        execute(store, job, settings, quiet=quiet, as_json=as_json)
    finally:
        store.close()


def executor_choice(mode: str | None, executor: str | None, ray_address: str | None) -> dict[str, Any]:
    """The executor flags that were given, checked; the others keep the job's (or the default) values."""
    from skuforge.engine.executors import check_choice

    given = {"mode": mode, "executor": executor, "ray_address": ray_address}
    chosen = {k: v for k, v in given.items() if v is not None}
    check_choice(chosen.get("mode", "online"), chosen.get("executor", "local"))
    return chosen


def resume(
    job_id: Annotated[str, typer.Argument(help="The job to continue (see `skuforge jobs`).")],
    max_cost: MaxCostOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    mode: ModeOpt = None,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
    price: PriceOpt = None,
) -> None:
    """Continue a paused, failed or interrupted job; finished items are not sent again."""
    settings = load_settings()
    store = open_store(settings.store_url())
    try:
        job = store.get_job(job_id)
        changed = executor_choice(mode, executor, ray_address)
        if max_cost is not None:
            changed["max_cost"] = max_cost
        if price is not None:
            from skuforge.providers.prices import parse_price

            parse_price(price)
            changed["price"] = price
        if changed:
            store.update_job(job.id, settings={**job.settings, **changed})
            job = store.get_job(job.id)
        execute(store, job, settings, quiet=quiet, as_json=as_json)
    finally:
        store.close()


def jobs(
    limit: Annotated[int, typer.Option(help="How many of the newest jobs.")] = 20,
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    store = open_store()
    try:
        rows = []
        for job in store.list_jobs(limit=limit, state=state):
            c = store.counts(job.id)
            rows.append((job, c))
    finally:
        store.close()
    if as_json:
        data = [
            {
                "id": j.id,
                "kind": j.kind,
                "state": j.state,
                "recipe": j.recipe,
                "model": j.model,
                "catalog": j.catalog,
                "done": c.done,
                "flagged": c.flagged,
                "failed": c.failed,
                "cost": c.cost,
            }
            for j, c in rows
        ]
        out.print_json(orjson.dumps(data).decode())
        return
    table = Table("job", "kind", "state", "recipe", "model", "catalog", "done", "flagged", "failed", "cost")
    for job, c in rows:
        table.add_row(
            job.id,
            job.kind,
            job.state,
            Path(job.recipe).name,
            job.model,
            Path(job.catalog).name,
            f"{c.done:,}",
            f"{c.flagged:,}",
            f"{c.failed:,}",
            money(c.cost),
        )
    out.print(table)


def show(
    job_id: Annotated[str, typer.Argument(help="The job.")],
    failures: Annotated[int, typer.Option(help="How many failed items to list.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Show a job: its spec, counts, spend and first failures."""
    from skuforge.engine import ray_results

    store = open_store()
    try:
        job = store.get_job(job_id)
        c = ray_results.counts(store, job)  # a Ray job's counts come from its output folder
        failed = list(store.items(job.id, status="failed", limit=failures))
        sourced = _items_with_sources(store, job, failures)
    finally:
        store.close()
    if as_json:
        data = {
            "job": {k: getattr(job, k) for k in job.__slots__},
            "counts": c.__dict__ if hasattr(c, "__dict__") else {k: getattr(c, k) for k in c.__slots__},
            "failures": [{"row_id": i.row_id, "step": i.step, "error": i.error} for i in failed],
            "sources": [
                {"row_id": i.row_id, "step": i.step, "variant": i.variant, "sources": i.meta["sources"]}
                for i in sourced
            ],
        }
        out.print_json(orjson.dumps(data, default=str).decode())
        return
    table = Table(show_header=False, title=f"Job {job.id}", title_justify="left")
    for name, value in [
        ("state", job.state),
        ("kind", job.kind),
        ("catalog", job.catalog),
        ("recipe", job.recipe),
        ("model", job.model),
        ("params", job.params or "-"),
        ("selection", {k: v for k, v in job.selection.items() if v}),
        ("out", job.out or "-"),
        ("rows", f"{c.rows:,}"),
        ("items", f"{c.done:,} done, {c.flagged:,} flagged, {c.failed:,} failed, {c.skipped:,} skipped"),
        ("tokens", f"{c.input_tokens:,} in, {c.output_tokens:,} out"),
        ("cost", money(c.cost)),
        ("error", job.error or "-"),
    ]:
        table.add_row(name, str(value))
    out.print(table)
    if failed:
        ft = Table("row", "step", "reason", title="Failures", title_justify="left")
        for item in failed:
            ft.add_row(
                item.row_id, item.step + (f"@{item.variant}" if item.variant else ""), item.error or ""
            )
        out.print(ft)
    if sourced:
        from skuforge.engine.export import cited

        st = Table("row", "step", "knowledge used", title="Sources (first items)", title_justify="left")
        for item in sourced:
            step = item.step + (f"@{item.variant}" if item.variant else "")
            st.add_row(item.row_id, step, "; ".join(cited(item.meta)))
        out.print(st)


def _items_with_sources(store: Any, job: Any, limit: int) -> list[Any]:
    """Up to `limit` items that quoted a knowledge base, from the first few hundred of the job."""
    from skuforge.engine.export import has_sources

    if limit <= 0 or not has_sources(store, job):
        return []
    found = [i for i in store.items(job.id, limit=500) if i.meta and i.meta.get("sources")]
    return found[:limit]


def export(
    job_id: Annotated[str, typer.Argument(help="The job.")],
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output file; its extension picks the format.")
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="xlsx, csv, tsv, jsonl or parquet.")] = None,
    approved_only: Annotated[
        bool, typer.Option("--approved-only", help="Only items a reviewer approved.")
    ] = False,
) -> None:
    """Write a job's results: original columns, then generated ones; failures separately."""
    from skuforge.engine.export import export_job

    store = open_store()
    try:
        job = store.get_job(job_id)
        target = out_path or (Path(job.out) if job.out else default_out(Path(job.catalog)))
        summary = export_job(store, job, target, fmt=fmt, approved_only=approved_only)
    finally:
        store.close()
    withheld = f", {summary.withheld:,} items withheld (not approved)" if summary.withheld else ""
    console.print(f"Wrote {summary.rows:,} rows to [bold]{summary.path}[/]{withheld}.")


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(resume)
    app.command()(jobs)
    app.command()(show)
    app.command()(export)
