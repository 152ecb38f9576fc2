"""Finding, validating and loading recipe files, with every mistake reported as `file:line: what`.

Recipes are looked up by name in the directories given (in order), then `$SKUFORGE_HOME/recipes`, then the
built-in ones shipped in `builtin/`; the first match wins, so a user recipe named `title` overrides the
built-in `title` (and `list_recipes` says so). A `.yaml` path loads that file directly.

A recipe is valid when its YAML, sections, schema and template syntax are right *and* each step renders
against a sample row within the sandbox's bounds: a template that would blow up on every row is refused
when the recipe loads, not after requests were paid for.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from jinja2 import TemplateSyntaxError
from jinja2.exceptions import SecurityError
from pydantic import ValidationError

from skuforge import config, yamlfile
from skuforge.errors import RecipeError
from skuforge.recipes import spec as S
from skuforge.recipes.answer import check_schema
from skuforge.recipes.recipe import Recipe, RecipeInfo, RecipeProblem
from skuforge.recipes.sandbox import compile_expression, compile_template, dry_run
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


def _known_checks(spec: S.RecipeSpec) -> set[str]:
    try:
        from skuforge.checks.base import available

        used = {str(check.get("check")) for step in spec.steps for check in step.checks}
        return set(KNOWN_CHECKS) | set(available(used))
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
        data = yamlfile.load(text)
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
    known = _known_checks(spec)
    for i, step in enumerate(spec.steps):
        for line, where, message in [*_check_templates(step, i, lines), *_check_step(step, i, lines, known)]:
            problems.append(RecipeProblem(path, line, message, where))
    if problems:
        return None, problems
    return _build(path, spec, lines, problems)


def _build(path: Path, spec: S.RecipeSpec, lines: LineMap, problems: list[RecipeProblem]) -> tuple:
    """Construct the recipe, dry-run what needs only parameters (defaults, variants, columns, checks), then
    render every step against a sample row: a template the sandbox stops makes the recipe invalid."""
    try:
        recipe = Recipe(spec, source=path, where=lines.sections(spec, str(path)))
        for step in recipe.steps:
            step.column_names(recipe.params)
            step.required_columns(recipe.params)
    except RecipeError as exc:
        problems.append(RecipeProblem(path, None, exc.message))
        return None, problems
    problems += sample_render_problems(recipe, path)
    return (None if problems else recipe), problems


def sample_render_problems(recipe: Recipe, path: Path) -> list[RecipeProblem]:
    """Render each step of `recipe`, for each of its variants, against a sample row (every field it names
    set to "Sample <field>", earlier steps' outputs filled from their schemas) with knowledge bases stubbed.

    Only what the sandbox stops is a problem (output or values too large, too many loop steps, too slow,
    unsafe attributes): a template can fail on made-up data for reasons real rows never meet.
    """
    found: list[RecipeProblem] = []
    params = recipe.params
    outputs: dict[str, Any] = {}
    with dry_run():
        for step in recipe.steps:
            row = {name: f"Sample {name}" for name in sample_fields(step, params)}
            for variant in _variants(step, params):
                problem = _sample_render(step, row, outputs, variant, params, path)
                if problem is not None and problem not in found:
                    found.append(problem)
            outputs[step.name] = sample_value(step.output_schema)
    return found


def _variants(step: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        return step.variants(params)
    except RecipeError:
        return [{}]


def _sample_render(
    step: Any, row: dict[str, Any], outputs: dict[str, Any], variant: dict[str, Any], params: Any, path: Path
) -> RecipeProblem | None:
    try:
        step.build_request(row, dict(outputs), variant, params, row_label="sample")
    except RecipeError as exc:
        if isinstance(exc.__cause__, SecurityError):
            line = re.search(rf"{re.escape(str(path))}:(\d+)\)", exc.message)
            section = re.search(r"step '[^']*', ([^ :]+)", exc.message)
            where = f"step '{step.name}', " + (section.group(1) if section else "a template")
            reason = f"a render against a sample row was stopped by the sandbox: {exc.__cause__}"
            return RecipeProblem(path, int(line.group(1)) if line else None, reason, where)
    except Exception:  # noqa: BLE001 - made-up data may break a template in ways real rows never do
        return None
    return None


def sample_fields(step: Any, params: dict[str, Any]) -> set[str]:
    """The row fields a step's templates and input name, for its sample row."""
    names = set(step.required_columns(params))
    inp = step.spec.input
    if isinstance(inp, S.InputSpec):
        listed = inp.fields if isinstance(inp.fields, list) else []
        names |= {name.rstrip("?") for name in [*listed, *inp.optional]}
    return names


def sample_value(schema: Any) -> Any:
    """A small value that fits a JSON Schema: what an earlier step's output looks like to a later one."""
    if not isinstance(schema, dict):
        return "sample"
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return sample_value(schema[key][0])
    kind = schema.get("type", "string")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object":
        return {name: sample_value(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [sample_value(schema.get("items") or {})]
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind, "sample")


def check_recipe_dirs(dirs: Sequence[Path | str]) -> None:
    """Refuse a recipe directory that does not exist or is not a directory (e.g. `--recipe-dir /typo`).

    Call it on directories a user gave, before anything else: an ignored directory means the run uses a
    built-in recipe instead of the user's own one without a word.
    """
    for given in dirs:
        directory = Path(given).expanduser()
        if not directory.exists():
            raise RecipeError(
                f"Recipe directory {directory} does not exist.",
                "Check the path given to --recipe-dir (or under recipe_dirs: in config.yaml).",
            )
        if not directory.is_dir():
            raise RecipeError(
                f"Recipe directory {directory} is a file, not a directory.",
                "Give the folder that holds your recipe .yaml files; to use one recipe file, pass its path "
                "to --recipe instead.",
            )


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
        data = yamlfile.load(path.read_text(encoding="utf-8"))
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
