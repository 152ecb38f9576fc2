"""Finding, validating and loading recipe files, with every mistake reported as `file:line: what`.

Recipes are looked up by name in the directories given (in order), then `$SKUFORGE_HOME/recipes`, then the
built-in ones shipped in `builtin/`; the first match wins, so a user recipe named `title` overrides the
built-in `title` (and `list_recipes` says so). A `.yaml` path loads that file directly.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from jinja2 import TemplateSyntaxError
from pydantic import ValidationError

from skuforge import config
from skuforge.errors import RecipeError
from skuforge.recipes import spec as S
from skuforge.recipes.answer import check_schema
from skuforge.recipes.recipe import Recipe, RecipeInfo, RecipeProblem
from skuforge.recipes.sandbox import compile_expression, compile_template
from skuforge.recipes.yamlmap import LineMap

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
SUFFIXES = (".yaml", ".yml")
KNOWN_CHECKS = ("schema", "length", "language", "grounding", "refusal", "duplicate")

_cache: dict[tuple[str, int, int], tuple[Recipe | None, list[RecipeProblem]]] = {}


def _check_templates(step: S.StepSpec, i: int, lines: LineMap) -> Iterator[tuple[int | None, str, str]]:
    """Compile every template and expression of a step; yield (line, section, message) per syntax error."""
    base: tuple[Any, ...] = ("steps", i)
    templates: list[tuple[tuple[Any, ...], str]] = [((*base, "instruction"), step.instruction)]
    templates += [((*base, "requirements", j), r) for j, r in enumerate(step.requirements)]
    templates += [((*base, "rules", j, "text"), r.text) for j, r in enumerate(step.rules)]
    if isinstance(step.input, str):
        templates.append(((*base, "input"), step.input))
    if step.ask:
        templates.append(((*base, "ask"), step.ask))
    expressions = [((*base, "rules", j, "when"), r.when) for j, r in enumerate(step.rules)]
    expressions += [((*base, "examples", j, "when"), e.when) for j, e in enumerate(step.examples) if e.when]
    expressions += [((*base, "variants", k), v) for k, v in step.variants.items()]
    for key in ("skip_when",):
        if getattr(step, key):
            expressions.append(((*base, key), getattr(step, key)))
    if isinstance(step.requires, str):
        expressions.append(((*base, "requires"), step.requires))
    if isinstance(step.max_tokens, str):
        expressions.append(((*base, "max_tokens"), step.max_tokens))
    if isinstance(step.input, S.InputSpec):
        if isinstance(step.input.fields, str):
            expressions.append(((*base, "input", "fields"), step.input.fields))
        if step.input.with_:
            expressions.append(((*base, "input", "with"), step.input.with_))
        if step.input.opencc:
            expressions.append(((*base, "input", "opencc"), step.input.opencc))
    if step.targets:
        expressions.append(((*base, "targets", "from"), step.targets.from_))
        if step.targets.allowed:
            expressions.append(((*base, "targets", "allowed"), step.targets.allowed))
    for loc, source in templates:
        try:
            compile_template(source)
        except TemplateSyntaxError as exc:
            yield (
                lines.content_line(loc, exc.lineno or 1),
                lines.label(loc),
                f"template syntax error: {exc.message}",
            )
    for loc, source in expressions:
        try:
            compile_expression(source)
        except TemplateSyntaxError as exc:
            yield lines.line(loc), lines.label(loc), f"expression syntax error in {source!r}: {exc.message}"


def _check_step(step: S.StepSpec, i: int, lines: LineMap, known_checks: set[str]) -> Iterator[tuple]:
    """Schema, target type, check names and column pattern of one step."""
    base: tuple[Any, ...] = ("steps", i)
    if step.output is not None:
        try:
            schema = S.compile_output(step.output)
            reason = check_schema(schema)
            if reason:
                yield (
                    lines.line((*base, "output")),
                    lines.label((*base, "output")),
                    f"invalid JSON Schema: {reason}",
                )
        except ValueError as exc:
            yield lines.line((*base, "output")), lines.label((*base, "output")), str(exc)
    if step.targets and step.targets.type != "same":
        try:
            S.shorthand_type(step.targets.type)
        except ValueError as exc:
            yield lines.line((*base, "targets", "type")), lines.label((*base, "targets")), str(exc)
    for j, check in enumerate(step.checks):
        name = str(check.get("check"))
        if name not in known_checks:
            close = difflib.get_close_matches(name, sorted(known_checks), n=1)
            tip = (
                f" Did you mean '{close[0]}'?"
                if close
                else f" Known checks: {', '.join(sorted(known_checks))}."
            )
            yield (
                lines.line((*base, "checks", j)),
                lines.label((*base, "checks", j)),
                f"unknown check '{name}'.{tip}",
            )
    allowed_keys = {"field", "step", *step.variants}
    import string

    for _, key, _, _ in string.Formatter().parse(step.columns.name):
        if key and key not in allowed_keys:
            loc = (*base, "columns", "name")
            yield (
                lines.line(loc),
                lines.label(loc),
                f"column pattern uses '{{{key}}}'; use {sorted(allowed_keys)}",
            )


def _known_checks() -> set[str]:
    try:
        from skuforge.checks.base import available

        return set(KNOWN_CHECKS) | set(available())
    except Exception:  # noqa: BLE001 - a broken check module must not stop recipe validation
        return set(KNOWN_CHECKS)


def _parse(path: Path, problems: list[RecipeProblem]) -> tuple[dict[str, Any] | None, LineMap | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(RecipeProblem(path, None, f"cannot read the file: {exc}"))
        return None, None
    try:
        lines = LineMap(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        what = " ".join(str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x)
        problems.append(RecipeProblem(path, mark.line + 1 if mark else None, f"YAML error: {what or exc}"))
        return None, None
    problems += [RecipeProblem(path, line, msg) for line, msg in lines.duplicates]
    if not isinstance(data, dict):
        problems.append(
            RecipeProblem(path, 1, "a recipe is a YAML mapping (name:, version:, instruction: ...)")
        )
        return None, None
    return data, lines


def _pydantic_problems(path: Path, exc: ValidationError, lines: LineMap) -> list[RecipeProblem]:
    out = []
    for err in exc.errors():
        loc = tuple(
            p for p in err["loc"] if not (isinstance(p, str) and p[:1].isupper() or p in ("str", "list[str]"))
        )
        key = loc[-1] if loc else ""
        if err["type"] == "missing":
            message = f"'{key}' is required"
        elif err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(key), S.all_keys(), n=1)
            message = f"unknown key '{key}'" + (f"; did you mean '{close[0]}'?" if close else "")
        else:
            message = err["msg"].removeprefix("Value error, ")
        out.append(RecipeProblem(path, lines.line(loc), message, lines.label(loc)))
    return _dedupe(out)


def _dedupe(problems: list[RecipeProblem]) -> list[RecipeProblem]:
    seen, out = set(), []
    for p in problems:
        if (p.line, p.message) not in seen:
            seen.add((p.line, p.message))
            out.append(p)
    return out


def check_file(path: Path) -> tuple[Recipe | None, list[RecipeProblem]]:
    """Validate one file and build its Recipe when it has no problem. Cached by path, size and mtime."""
    path = Path(path)
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError as exc:
        return None, [RecipeProblem(path, None, f"cannot read the file: {exc}")]
    if key not in _cache:
        _cache[key] = _check_uncached(path)
    return _cache[key]


def _check_uncached(path: Path) -> tuple[Recipe | None, list[RecipeProblem]]:
    problems: list[RecipeProblem] = []
    data, lines = _parse(path, problems)
    if data is None or lines is None:
        return None, problems
    normal, flat = S.normalise(data)
    lines.flat = flat
    try:
        spec = S.RecipeSpec.model_validate(normal)
    except ValidationError as exc:
        return None, problems + _pydantic_problems(path, exc, lines)
    known = _known_checks()
    for i, step in enumerate(spec.steps):
        for line, where, message in [*_check_templates(step, i, lines), *_check_step(step, i, lines, known)]:
            problems.append(RecipeProblem(path, line, message, where))
    if problems:
        return None, problems
    return _build(path, spec, lines, problems)


def _build(path: Path, spec: S.RecipeSpec, lines: LineMap, problems: list[RecipeProblem]) -> tuple:
    """Construct the recipe and dry-run what needs only parameters (defaults, variants, columns, checks)."""
    try:
        recipe = Recipe(spec, source=path, where=lines.sections(spec, str(path)))
        for step in recipe.steps:
            step.column_names(recipe.params)
            step.required_columns(recipe.params)
    except RecipeError as exc:
        problems.append(RecipeProblem(path, None, exc.message))
        return None, problems
    return recipe, problems


def validate_recipe_file(path: str | Path) -> list[RecipeProblem]:
    """Every YAML, schema and template problem in a recipe file, each with its line; [] means valid."""
    return check_file(Path(path))[1]


def _load_path(path: Path) -> Recipe:
    recipe, problems = check_file(path)
    if recipe is None:
        shown = "\n  ".join(str(p) for p in problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise RecipeError(
            f"Recipe file {path} has {len(problems)} problem{'' if len(problems) == 1 else 's'}:"
            f"\n  {shown}{more}",
            f"Fix them, then check with: skuforge recipes validate {path}",
        )
    return recipe


def search_dirs(dirs: Sequence[Path | str] = ()) -> list[tuple[Path, bool]]:
    """Directories searched for recipes, highest precedence first, with whether each is the builtin one."""
    out = [(Path(d).expanduser(), False) for d in dirs]
    out.append((config.home() / "recipes", False))
    out.append((BUILTIN_DIR, True))
    return out


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())


def _declared_name(path: Path) -> str:
    recipe, _ = check_file(path)
    if recipe is not None:
        return recipe.name
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            return data["name"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        pass
    return path.stem


def _catalogue(dirs: Sequence[Path | str]) -> dict[str, list[tuple[Path, bool]]]:
    """name -> [(file, builtin?)], highest precedence first."""
    found: dict[str, list[tuple[Path, bool]]] = {}
    for directory, builtin in search_dirs(dirs):
        for path in _files(directory):
            found.setdefault(_declared_name(path), []).append((path, builtin))
    return found


def load_recipe(name_or_path: str | Path, dirs: Sequence[Path | str] = ()) -> Recipe:
    """A recipe by built-in name, user-directory name, or path to a .yaml file."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix in SUFFIXES or "/" in text or "\\" in text:
        if not path.is_file():
            raise RecipeError(
                f"Recipe file {path} does not exist.",
                "Check the path, or give the name of a recipe (see `skuforge recipes list`).",
            )
        return _load_path(path)
    found = _catalogue(dirs)
    if text in found:
        return _load_path(found[text][0][0])
    names = sorted(found)
    close = difflib.get_close_matches(text, names, n=1)
    hint = (f"Did you mean '{close[0]}'? " if close else "") + f"Known recipes: {', '.join(names)}. "
    raise RecipeError(f"Unknown recipe '{text}'.", hint + "Or give the path of a .yaml recipe file.")


def list_recipes(dirs: Sequence[Path | str] = ()) -> list[RecipeInfo]:
    """Every recipe that a name would load, sorted by name; `overrides` names a file it shadows."""
    infos = []
    for name, entries in sorted(_catalogue(dirs).items()):
        path, builtin = entries[0]
        recipe, problems = check_file(path)
        overrides = entries[1][0] if len(entries) > 1 else None
        if recipe is None:
            infos.append(
                RecipeInfo(
                    name=name,
                    version="",
                    description="",
                    source=path,
                    steps=[],
                    builtin=builtin,
                    overrides=overrides,
                    problem=str(problems[0]),
                )
            )
            continue
        infos.append(
            RecipeInfo(
                name=name,
                version=recipe.version,
                description=recipe.description,
                source=path,
                steps=[s.name for s in recipe.steps],
                builtin=builtin,
                overrides=overrides,
                params=dict(recipe.params),
            )
        )
    return infos
