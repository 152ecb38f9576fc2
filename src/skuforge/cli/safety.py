"""`skuforge safety scan | packs`: try the compliance gate on a text or a file, list the policy packs.

Exit codes of `scan`: 0 clean, 1 something to flag, 5 something blocked; so a shell script or CI step can
gate on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

group = typer.Typer(help="Scan text for policy violations and list the safety packs.", no_args_is_help=True)
out = Console()

PacksOpt = Annotated[str, typer.Option("--packs", help="Comma-separated built-in packs.")]
ExtraOpt = Annotated[
    list[Path] | None, typer.Option("--pack", help="Your own pack: a YAML file or a directory of them.")
]
CompetitorsOpt = Annotated[
    Path | None,
    typer.Option("--competitors", help="Competitor brands: a .txt (one a line), .csv or .yaml file."),
]
EXIT_FLAGGED, EXIT_BLOCKED = 1, 5


def _texts(text_or_file: str) -> list[tuple[str, str]]:
    """(label, text) pairs: each line of an existing file, else the argument itself."""
    path = Path(text_or_file)
    if len(text_or_file) < 4096 and path.is_file():
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        return [(f"{path.name}:{i}", line) for i, line in enumerate(lines, 1) if line.strip()]
    return [("text", text_or_file)]


@group.command()
def scan(
    text_or_file: Annotated[str, typer.Argument(help="The text to check, or a file checked line by line.")],
    packs: PacksOpt = "zh,en,pii",
    pack: ExtraOpt = None,
    competitors: CompetitorsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per match.")] = False,
) -> None:
    """Find flagged and blocked terms, personal data and competitor brands, with their positions."""
    from skuforge.safety.packs import load_packs

    names = [p.strip() for p in packs.split(",") if p.strip()]
    pack_set = load_packs(names, extra=pack or [], competitors=competitors)
    matches = [(label, m) for label, text in _texts(text_or_file) for m in pack_set.scan(text)]
    if as_json:
        for label, m in matches:
            out.print(orjson.dumps({"where": label, **m.to_dict()}).decode(), highlight=False, soft_wrap=True)
    elif matches:
        table = Table("where", "chars", "text", "term", "category", "action", "pack")
        for label, m in matches:
            table.add_row(label, f"{m.start}-{m.end}", m.text, m.term, m.category, m.action, m.pack)
        out.print(table)
    else:
        out.print("No violations found.")
    if any(m.action == "block" for _, m in matches):
        raise typer.Exit(EXIT_BLOCKED)
    if matches:
        raise typer.Exit(EXIT_FLAGGED)


@group.command("packs")
def packs_(
    pack: ExtraOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Built-in packs (and yours) with their versions and term counts."""
    from skuforge.safety.packs import builtin_packs, load_packs

    rows: list[dict[str, Any]] = []
    for p in [*builtin_packs().values(), *(load_packs([], extra=pack).packs if pack else [])]:
        rows.append(
            {
                "name": p.name,
                "version": p.version,
                "market": p.market or "",
                "language": p.language or "",
                "terms": len(p.terms()),
                "detectors": sorted(p.detectors),
                "source": p.path or "",
            }
        )
    if as_json:
        out.print_json(orjson.dumps(rows).decode())
        return
    table = Table("pack", "version", "market", "language", "terms", "detectors", "source")
    for r in rows:
        table.add_row(
            r["name"],
            r["version"],
            r["market"],
            r["language"],
            str(r["terms"]),
            ", ".join(r["detectors"]),
            str(r["source"]),
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="safety")
