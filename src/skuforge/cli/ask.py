"""`skuforge ask`: answer a shopper's question about one product, grounded in its row and a knowledge base.

skuforge ask examples/catalog.csv --id EN-1004 "What size is the ball?"
skuforge ask examples/catalog.csv --id EN-1004 "How do I care for it?" --kb brand --model fake:
    skuforge ask examples/catalog.csv --questions questions.csv --out qa.csv   # then run it with --recipe qa
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from skuforge.errors import UserError

out = Console()


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)


def ask(
    catalog: Annotated[Path, typer.Argument(help="The catalog file (.xlsx .csv .jsonl .parquet).")],
    question: Annotated[str | None, typer.Argument(help="The shopper's question, in quotes.")] = None,
    row_id: Annotated[str | None, typer.Option("--id", help="The product's id in the catalog.")] = None,
    kb: Annotated[str | None, typer.Option("--kb", help="A knowledge base to quote passages from.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="provider:model (default: settings).")
    ] = None,
    k: Annotated[int, typer.Option(help="Passages to retrieve from the knowledge base.")] = 3,
    id_column: Annotated[str | None, typer.Option(help="The column holding product ids.")] = None,
    questions: Annotated[
        Path | None,
        typer.Option(help="A table of product id + question to join to the catalog (with --out)."),
    ] = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where --questions writes the joined table.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """Answer a shopper's question from the product's own data (and a knowledge base), citing what it used.

    Says it does not know when the data does not answer the question. With --questions, joins a table of
    product ids and questions to the catalog instead, for `skuforge run TABLE --recipe qa`.
    """
    if questions is not None:
        _join(catalog, questions, out_path, id_column)
        return
    if row_id is None or not question:
        raise UserError(
            "Say which product and what to ask.",
            'Run: skuforge ask CATALOG --id ID "Is it waterproof?"  (or --questions FILE --out FILE)',
        )
    from skuforge.config import load_settings
    from skuforge.knowledge.qa import ask_product

    chosen = model or load_settings().model
    answer = ask_product(catalog, row_id, question, model=chosen, kb=kb, k=k, id_column=id_column)
    if as_json:
        out.print_json(orjson.dumps(answer).decode())
        return
    _print(answer)


def _print(answer: dict[str, Any]) -> None:
    out.print(str(answer.get("answer", "")), highlight=False, markup=False)
    if not answer.get("answerable"):
        out.print("[dim](not answered by the product data)[/]")
    fields: list[Any] = list(answer.get("cited_fields") or [])
    cited: list[Any] = list(answer.get("cited_sources") or [])
    if fields:
        out.print(f"[dim]fields:[/] {', '.join(map(str, fields))}", highlight=False)
    if cited:
        out.print(f"[dim]passages:[/] {', '.join(map(str, cited))}", highlight=False)
    sources: list[dict[str, Any]] = list(answer.get("sources") or [])
    retrieved = [str(s.get("citation") or s.get("source")) for s in sources]
    if retrieved:
        out.print(f"[dim]retrieved:[/] {'; '.join(retrieved)}", highlight=False)


def _join(catalog: Path, questions: Path, out_path: Path | None, id_column: str | None) -> None:
    from skuforge.knowledge.qa import join_questions

    if out_path is None:
        raise UserError("--questions needs --out: where to write the joined table.", "Add --out qa-table.csv")
    report = join_questions(questions, catalog, out_path, id_column=id_column)
    out.print(
        f"Wrote {report['questions']} questions with their products to {report['path']}.", highlight=False
    )
    for line in report["missing"]:
        out.print(f"[yellow]No product for {line}[/]", highlight=False)
    out.print(f"Answer them: skuforge run {report['path']} --recipe qa", highlight=False)
