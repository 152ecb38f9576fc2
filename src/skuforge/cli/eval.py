"""`skuforge eval`: measure how well a model fills in attributes and translates, against gold data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from skuforge.eval.loaders import FORMATS

out = Console()
err = Console(stderr=True)


def _progress(done: int, total: int) -> None:
    """A line every 5% on stderr, so a long run against a local model shows it is alive."""
    if done == total or done % max(1, total // 20) == 0:
        err.print(f"{done}/{total} products", highlight=False)


GoldOpt = Annotated[Path, typer.Option("--gold", help="Gold file (JSONL): OA-Mine, AE-110K or WDC-PAVE.")]
ModelOpt = Annotated[str, typer.Option("--model", help="Model to evaluate: local:qwen2.5-0.5b, fake:, ...")]
FormatOpt = Annotated[
    str | None, typer.Option("--format", help=f"Gold format: {', '.join(FORMATS)} (default: detect).")
]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Evaluate only the first N products.")]
ShotsOpt = Annotated[
    int, typer.Option("--shots", min=0, help="Demonstrations per request, from later products.")
]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight at once.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Report file (HTML; the JSON goes beside it).")]


def attributes(
    gold: GoldOpt,
    model: ModelOpt,
    fmt: FormatOpt = None,
    limit: LimitOpt = None,
    shots: ShotsOpt = 0,
    concurrency: ConcurrencyOpt = 4,
    report: OutOpt = Path("eval-report.html"),
) -> None:
    """Score attribute completion: precision, recall and F1 per attribute, exact and normalised."""
    from skuforge.eval.runner import run_eval

    result = run_eval(
        gold,
        model,
        fmt=fmt,
        limit=limit,
        shots=shots,
        concurrency=concurrency,
        out=report,
        progress=_progress,
    )
    for mode in ("normalised", "exact"):
        micro, macro = result["scores"][mode]["micro"], result["scores"][mode]["macro"]
        out.print(
            f"{mode:>10}: micro P {micro['precision']:.1%}  R {micro['recall']:.1%}  F1 {micro['f1']:.1%}"
            f"   macro F1 {macro['f1']:.1%}",
            highlight=False,
        )
    if result["errors"]:
        out.print(f"{len(result['errors'])} of {result['meta']['items']} items failed; see the report.")
    out.print(f"Report: {result['meta']['report']} (JSON: {result['meta']['json']})", highlight=False)


PairsOpt = Annotated[
    Path,
    typer.Option("--pairs", help="Parallel titles: TSV, CSV or JSONL with source and reference columns."),
]
LocaleOpt = Annotated[str, typer.Option("--locale", help="Target locale of the references.")]
RecipeOpt = Annotated[str, typer.Option("--recipe", help="Translation recipe (name or YAML path).")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Recipe parameter, e.g. --set glossary=Anker,PowerCore.")
]
ColumnOpt = Annotated[str | None, typer.Option(help="Column name, when it cannot be told from the header.")]


TranslationModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="Model to evaluate (default: the one `skuforge run` uses for the recipe)."),
]


def translation(
    pairs: PairsOpt,
    model: TranslationModelOpt = None,
    locale: LocaleOpt = "en",
    recipe: RecipeOpt = "translate",
    settings: SetOpt = None,
    limit: LimitOpt = None,
    concurrency: ConcurrencyOpt = 1,
    source_column: ColumnOpt = None,
    reference_column: ColumnOpt = None,
    report: OutOpt = Path("eval-translation.html"),
) -> None:
    """Score translations: chrF and BLEU against references, leftover source script, codes kept."""
    from skuforge.cli.run import model_choice, parse_sets
    from skuforge.config import load_settings
    from skuforge.eval.translation import run_translation_eval

    params = parse_sets(settings)
    result = run_translation_eval(
        pairs,
        model_choice(model, load_settings(), recipe, None, quiet=False),
        locale=locale,
        recipe=recipe,
        params=params,
        limit=limit,
        concurrency=concurrency,
        source_column=source_column,
        reference_column=reference_column,
        out=report,
        progress=_progress,
    )
    s, meta = result["scores"], result["meta"]
    out.print(f"chrF {s['chrf']:.1f}   BLEU {s['bleu']:.1f}   ({s['items']} titles)", highlight=False)
    out.print(
        f"leftover source script: {s['leftover']} of {s['items']} ({s['leftover_unflagged']} not flagged)"
        f"   codes kept: {s['codes_kept']} of {s['codes']} ({s['codes_kept_share']:.1%})",
        highlight=False,
    )
    out.print(
        f"{s['done']} done, {s['flagged']} flagged, {s['failed']} failed"
        f"   {meta['seconds_per_title']} s a title"
        f" (load average {meta['load_average'][0]} -> {meta['load_average'][1]})",
        highlight=False,
    )
    out.print(f"Report: {meta['report']} (JSON: {meta['json']})", highlight=False)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Measure output quality against gold data.", no_args_is_help=True)
    group.command("attributes")(attributes)
    group.command("translation")(translation)
    app.add_typer(group, name="eval")
