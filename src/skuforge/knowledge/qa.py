"""Product Q&A: answer a shopper's question from one product's row and, optionally, a knowledge base.

    answer = ask_product("catalog.xlsx", "EN-1004", "What size is the ball?", kb="brand")
    answer["answer"], answer["answerable"], answer["cited_fields"], answer["cited_sources"], answer["sources"]

Both the single question (`skuforge ask CATALOG --id ID "question"`) and a table of questions (the `qa`
recipe, `skuforge run QUESTIONS --recipe qa`) go through the built-in `qa` recipe, so they see the same
prompt: the product fields as data, the question as a field of that data, passages as reference blocks,
and a JSON schema that makes the model list the fields it used before it decides whether it can answer.

A table of product id + question is joined to the catalog first (`join_questions`), so the recipe run sees
each question beside its product's fields; a question whose product is not in the catalog is reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from skuforge.errors import CatalogError, NotFoundError, OutputError, UserError
from skuforge.knowledge.support import evidence_text, second_opinion

RECIPE = "qa"
QUESTION = "question"


def _open(catalog: str | Path, id_column: str | None) -> Any:
    from skuforge.catalog import open_catalog
    from skuforge.engine.context import detect_id_column

    opened = open_catalog(catalog, id_column=id_column)
    if id_column is None and (found := detect_id_column(opened.columns)):
        opened = open_catalog(catalog, id_column=found)
    return opened


def find_product(catalog: str | Path, row_id: str, *, id_column: str | None = None) -> dict[str, Any]:
    """The row whose id is `row_id` (one streaming pass); NotFoundError naming the file and the id column."""
    opened = _open(catalog, id_column)
    for row in opened.rows():
        if row.row_id == str(row_id):
            return dict(row.data)
    column = opened.id_column or "row number"
    raise NotFoundError(
        f"No product with id '{row_id}' in {opened.path} (ids come from the column '{column}').",
        "Check the id, or name the id column with --id-column.",
    )


def question_row(product: dict[str, Any], question: str) -> dict[str, Any]:
    """The product's fields plus the question, as the `qa` recipe reads them."""
    if not question.strip():
        raise UserError(
            "The question is empty.", 'Ask it in quotes: skuforge ask CATALOG --id ID "Is it waterproof?"'
        )
    row = {k: v for k, v in product.items() if k != QUESTION}
    row[QUESTION] = question.strip()
    return row


async def ask_row_async(
    row: dict[str, Any], *, model: str, kb: str | None = None, k: int = 3, provider: Any = None
) -> dict[str, Any]:
    """Answer the question in `row` with `model` (or an open `provider`): the recipe's output, checked by
    the support check, plus the `sources` it retrieved."""
    from skuforge.providers import get_provider
    from skuforge.recipes import load_recipe

    recipe = load_recipe(RECIPE)
    step = recipe.steps[0]
    params = recipe.resolve_params({"kb": kb or "", "k": k})
    request = step.build_request(row, {}, {}, params, row_label=str(row.get("id") or "the product"))
    if request is None:  # the qa step has no skip rule; kept for a user's copy of the recipe that adds one
        raise UserError("The qa recipe made no request for this product.", "Check the recipe's skip_when.")
    if provider is None:
        async with get_provider(model) as opened:
            answer = await _answer(opened, step, request)
    else:
        answer = await _answer(provider, step, request)
    prompt = "\n".join(m.content for m in request.messages)
    evidence = evidence_text(row, QUESTION, prompt)
    answer = second_opinion(answer, str(row.get(QUESTION, "")), evidence)
    return {**answer, "sources": request.sources or [], "model": model}


async def _answer(provider: Any, step: Any, request: Any) -> dict[str, Any]:
    result = await provider.generate(request)
    try:
        answer: dict[str, Any] = step.parse(result.text)
    except OutputError as first:
        result = await provider.generate(step.repair_request(request, result.text, first.message))
        answer = step.parse(result.text)
    return answer


def ask_product(
    catalog: str | Path,
    row_id: str,
    question: str,
    *,
    model: str,
    kb: str | None = None,
    k: int = 3,
    id_column: str | None = None,
) -> dict[str, Any]:
    """Answer one shopper question about one product of a catalog (see the module docstring)."""
    row = question_row(find_product(catalog, row_id, id_column=id_column), question)
    return asyncio.run(ask_row_async(row, model=model, kb=kb, k=k))


def _question_rows(questions: str | Path, id_column: str | None) -> Iterator[tuple[str, str, str]]:
    from skuforge.catalog import open_catalog

    table = open_catalog(questions)
    if QUESTION not in table.columns:
        raise CatalogError(
            f"{table.path} has no '{QUESTION}' column (columns: {', '.join(table.columns)}).",
            "Name the column holding the questions 'question'.",
        )
    key = id_column or next((c for c in table.columns if c != QUESTION), None)
    if key is None:
        raise CatalogError(f"{table.path} has no product id column.", "Add a column with the product id.")
    for row in table.rows():
        yield str(row.data.get(key) or ""), str(row.data.get(QUESTION) or ""), row.line


def join_questions(
    questions: str | Path, catalog: str | Path, out: str | Path, *, id_column: str | None = None
) -> dict[str, Any]:
    """Write `out`: one row per question with its product's fields (product id + question -> a qa table).

    The questions table has a product id column (its first column that is not `question`, or `id_column`)
    and a `question` column. Products are looked up in one pass over the catalog.
    """
    from skuforge.catalog import write_catalog

    asked = list(_question_rows(questions, id_column))
    wanted = {pid for pid, _, _ in asked}
    opened = _open(catalog, None)
    products = {r.row_id: dict(r.data) for r in opened.rows() if r.row_id in wanted}
    missing = [f"{line} (id '{pid}')" for pid, _, line in asked if pid not in products]
    rows = []
    for n, (pid, question, _) in enumerate(asked, start=1):
        if pid in products:
            rows.append({"question_id": n, **question_row(products[pid], question)})
    columns = ["question_id", *[c for c in opened.columns if c != QUESTION], QUESTION]
    write_catalog(Path(out), columns, rows)
    return {"path": str(out), "questions": len(rows), "missing": missing}
