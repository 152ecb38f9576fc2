"""`skuforge recipes list | show | validate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from skuforge.config import load_settings
from skuforge.errors import RecipeError

group = typer.Typer(help="List, show and validate recipes.", no_args_is_help=True)
out = Console()
RecipeDirOpt = Annotated[
    list[Path] | None, typer.Option("--recipe-dir", help="A directory of your own recipes.")
]


def _dirs(extra: list[Path] | None) -> list[Path]:
    """The configured recipe directories and those given with --recipe-dir, which must exist."""
    from skuforge.recipes import check_recipe_dirs

    check_recipe_dirs(extra or [])
    return [*load_settings().recipe_dirs, *(extra or [])]


@group.command("list")
def list_(recipe_dir: RecipeDirOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Built-in recipes and the ones in your recipe directories."""
    from skuforge.recipes import list_recipes

    infos = list_recipes(_dirs(recipe_dir))
    if as_json:
        out.print_json(orjson.dumps([_info_dict(i) for i in infos], default=str).decode())
        return
    table = Table("recipe", "version", "steps", "description", "source")
    for info in infos:
        data = _info_dict(info)
        table.add_row(
            data["name"],
            str(data["version"]),
            ", ".join(data["steps"]),
            data["description"],
            str(data["source"]),
        )
    out.print(table)


def _info_dict(info: object) -> dict[str, Any]:
    fields = ("name", "version", "description", "source", "steps")
    data = {f: getattr(info, f, "") for f in fields}
    data["steps"] = [str(s) for s in (data["steps"] or [])]
    return data


@group.command()
def show(
    name: Annotated[str, typer.Argument(help="Recipe name or .yaml path.")], recipe_dir: RecipeDirOpt = None
) -> None:
    """Print a recipe's YAML and its steps."""
    from skuforge.recipes import load_recipe

    recipe = load_recipe(name, _dirs(recipe_dir))
    source = getattr(recipe, "source", None)
    if source and Path(source).exists():
        out.print(Syntax(Path(source).read_text(encoding="utf-8"), "yaml", line_numbers=True))
    table = Table("step", "model", "output columns", "checks", title=f"{recipe.name} v{recipe.version}")
    required = [n for n, p in recipe.param_specs.items() if p.required and p.default is None]
    params = recipe.resolve_params({n: "<" + n + ">" for n in required})  # columns that name a param show it
    preferred = recipe.spec.local_model
    default = f"(job's model; local:{preferred} when installed)" if preferred else "(job's model)"
    for step in recipe.steps:
        table.add_row(
            step.name,
            step.model or default,
            ", ".join(step.column_names(params)),
            ", ".join(c.check for c in step.checks),
        )
    out.print(table)


@group.command()
def validate(path: Annotated[Path, typer.Argument(help="A recipe .yaml file.")]) -> None:
    """Check a recipe file: YAML, sections, output schema and every template, with line numbers.

    Each step is also rendered against a sample row, so a template that the sandbox would stop on every
    row (too large, too many loop steps, too slow, unsafe) is reported here, not during a paid run."""
    from skuforge.recipes import validate_recipe_file

    problems = validate_recipe_file(path)
    if not problems:
        out.print(f"[green]{path} is a valid recipe; its templates render a sample row within the limits.[/]")
        return
    for problem in problems:
        out.print(str(problem), markup=False, highlight=False)
    raise RecipeError(
        f"{path} has {len(problems)} problem(s), listed above.",
        "Fix them and run `skuforge recipes validate` again.",
    )


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="recipes")
