"""/api/recipes: list, show, validate, and create or update user recipes in SKUFORGE_HOME/recipes."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Request

from skuforge.recipes import list_recipes, load_recipe, validate_recipe_file
from skuforge.service.auth import Caller
from skuforge.service.context import get_ctx
from skuforge.service.errors import ApiError

router = APIRouter(prefix="/api/recipes", tags=["recipes"])
RECIPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_RECIPE_BYTES = 256 * 1024


def check_name(name: str) -> str:
    if not RECIPE_NAME.match(name) or ".." in name:
        raise ApiError(
            404, f"No recipe '{name[:60]}'.", "Recipe names use letters, digits, '_', '-' and '.'."
        )
    return name


def problems_of(text: str) -> list[dict[str, Any]]:
    """Validate YAML text as a recipe file, without installing it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recipe.yaml"
        path.write_text(text, encoding="utf-8")
        return [{"line": p.line, "where": p.where, "message": p.message} for p in validate_recipe_file(path)]


@router.get("", summary="List recipes (built-in and user)")
def index(request: Request, _: Caller) -> list[dict[str, Any]]:
    dirs = get_ctx(request).settings.recipe_dirs
    return [
        {
            "name": r.name,
            "version": r.version,
            "description": r.description,
            "steps": r.steps,
            "builtin": r.builtin,
            "overrides_builtin": r.overrides is not None,
            "problem": r.problem,
            "params": r.params,
        }
        for r in list_recipes(dirs)
    ]


@router.get("/{name}", summary="Show a recipe: its YAML and parameters")
def show(request: Request, _: Caller, name: str) -> dict[str, Any]:
    recipe = load_recipe(check_name(name), get_ctx(request).settings.recipe_dirs)
    text = recipe.source.read_text(encoding="utf-8") if recipe.source else ""
    return {
        "name": recipe.name,
        "version": recipe.version,
        "description": recipe.description,
        "steps": [s.name for s in recipe.steps],
        "params": recipe.params,
        "yaml": text,
        "fingerprint": recipe.fingerprint(),
    }


@router.post("/validate", summary="Validate recipe YAML without saving it")
def validate(
    _: Caller,
    yaml_text: str = Body(..., media_type="text/plain", max_length=MAX_RECIPE_BYTES),
) -> dict[str, Any]:
    problems = problems_of(yaml_text)
    return {"valid": not problems, "problems": problems}


@router.put("/{name}", summary="Create or update a user recipe (YAML body)")
def save(
    request: Request,
    _: Caller,
    name: str,
    yaml_text: str = Body(..., media_type="text/plain", max_length=MAX_RECIPE_BYTES),
) -> dict[str, Any]:
    check_name(name)
    problems = problems_of(yaml_text)
    if problems:
        first = problems[0]
        raise ApiError(
            422,
            f"The recipe has {len(problems)} problem(s); line {first['line']}: {first['message']}",
            "Fix the YAML and send it again; POST /api/recipes/validate lists every problem.",
            code="invalid_recipe",
        )
    folder = get_ctx(request).recipes_dir
    target = folder / f"{name}.yaml"
    tmp = folder / f".{name}.yaml.tmp"
    tmp.write_text(yaml_text, encoding="utf-8")
    os.replace(tmp, target)
    return {"name": name, "saved": True}
