"""`skuforge eval`: measure how well a model fills in attributes, against gold data."""

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


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Measure output quality against gold data.", no_args_is_help=True)
    group.command("attributes")(attributes)
    app.add_typer(group, name="eval")
