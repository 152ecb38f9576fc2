"""docs/errors.md, the catalogue of bad inputs and the error each one gets, is generated from CASES below.

Each case makes a bad input in a temporary folder and calls skuforge the way a user's command would; it must
raise a `UserError` (the CLI prints its message and hint and exits 2, with no traceback). The test renders
every case into Markdown and fails when docs/errors.md differs, so the document always shows the errors
skuforge really gives.

To add a case: write a function `(tmp: Path) -> None` that triggers the error and decorate it with
`@case(area, title, given)`; `given` is the bad input as a reader sees it (Markdown). Cases appear grouped by
area, in the order they are defined. Then regenerate the document:

    SKUFORGE_REGEN_DOCS=1 .venv/bin/python -m pytest tests/test_errors_doc.py -q
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from openpyxl import Workbook

from skuforge.errors import UserError

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
REGENERATE = "SKUFORGE_REGEN_DOCS"


@dataclass(frozen=True)
class Case:
    area: str
    title: str
    given: str
    trigger: Callable[[Path], None]


CASES: list[Case] = []


def case(area: str, title: str, given: str) -> Callable[[Callable[[Path], None]], Callable[[Path], None]]:
    def register(trigger: Callable[[Path], None]) -> Callable[[Path], None]:
        CASES.append(Case(area, title, given, trigger))
        return trigger

    return register


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# -- catalogs ---------------------------------------------------------------------------------------------


@case(
    "Catalogs",
    "A CSV that mixes UTF-8 and GB18030",
    "`catalog.csv`: line 2 saved as UTF-8, line 3 as GB18030.",
)
def _mixed_encodings(tmp: Path) -> None:
    from skuforge.catalog import open_catalog

    data = "sku,title\nA1,304不锈钢电热水壶\n".encode() + "A2,不锈钢保温杯\n".encode("gb18030")
    open_catalog(write(tmp / "catalog.csv", data))


@case(
    "Catalogs",
    "A UTF-8 CSV with a stray byte in it",
    "`catalog.csv` in UTF-8, with one Latin-1 `é` on line 4.",
)
def _damaged_utf8(tmp: Path) -> None:
    from skuforge.catalog import open_catalog

    rows = "sku,title\nA1,304不锈钢电热水壶\nA2,Tasse à café\n".encode()
    open_catalog(write(tmp / "catalog.csv", rows + b"A3,caf\xe9 cr\xe8me\n"))


@case("Catalogs", "A header with no products under it", "`catalog.csv` holding only `sku,title,brand`.")
def _header_only(tmp: Path) -> None:
    from skuforge.catalog import open_catalog

    open_catalog(write(tmp / "catalog.csv", "sku,title,brand\n"))


@case(
    "Catalogs",
    "An xlsx whose formulas have no saved value",
    "`catalog.xlsx` written by a script: `=B2*2` in C2, never opened in Excel.",
)
def _formula_without_value(tmp: Path) -> None:
    from skuforge.catalog import open_catalog

    workbook = Workbook()
    workbook.active.title = "Products"
    workbook.active.append(["sku", "price", "double"])
    workbook.active.append(["A1", 5, "=B2*2"])
    workbook.save(tmp / "catalog.xlsx")
    open_catalog(tmp / "catalog.xlsx")


@case("Catalogs", "A sheet number that does not exist", "`--sheet 9` for a workbook with two sheets.")
def _no_such_sheet(tmp: Path) -> None:
    from skuforge.catalog import open_catalog

    workbook = Workbook()
    workbook.active.title = "Products"
    workbook.active.append(["sku"])
    workbook.active.append(["A1"])
    workbook.create_sheet("Notes").append(["n"])
    workbook.save(tmp / "catalog.xlsx")
    open_catalog(tmp / "catalog.xlsx", sheet="9")


@case("Catalogs", "An old binary Excel file", "`catalog.xls`")
def _xls(tmp: Path) -> None:
    from skuforge.catalog import open_catalog

    open_catalog(write(tmp / "catalog.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600))


@case(
    "Catalogs", "More values on a line than the header names", "`catalog.csv` whose line 3 is `A2,Mug,oops`."
)
def _too_many_values(tmp: Path) -> None:
    from skuforge.catalog import open_catalog

    list(open_catalog(write(tmp / "catalog.csv", "sku,title\nA1,Cup\nA2,Mug,oops\n")).rows())


@case("Catalogs", "The same product id twice", "`--id-column sku` where `B2` is on lines 3 and 5.")
def _duplicate_ids(tmp: Path) -> None:
    from skuforge.catalog import open_catalog

    path = write(tmp / "catalog.csv", "sku\nA1\nB2\nC3\nB2\n")
    list(open_catalog(path, id_column="sku").rows())


# -- the output -------------------------------------------------------------------------------------------


def _catalog(tmp: Path) -> Path:
    return write(tmp / "data" / "catalog.csv", "sku,title\nA1,Mug\n")


@case(
    "Output",
    "`--out` is the catalog itself",
    "`--out enriched.csv` where `enriched.csv` links to `data/catalog.csv`.",
)
def _out_is_input(tmp: Path) -> None:
    from skuforge.catalog import check_output_path

    catalog = _catalog(tmp)
    (tmp / "enriched.csv").symlink_to(catalog)
    check_output_path(tmp / "enriched.csv", catalog)


@case(
    "Output",
    "`--out` in a folder that does not exist",
    "`--out results/enriched.xlsx`, no `results/` folder.",
)
def _out_folder_missing(tmp: Path) -> None:
    from skuforge.catalog import check_output_path

    check_output_path(tmp / "results" / "enriched.xlsx", _catalog(tmp))


@case("Output", "`--out` with an extension skuforge does not write", "`--out enriched.docx`")
def _out_extension(tmp: Path) -> None:
    from skuforge.catalog import check_output_path

    check_output_path(tmp / "enriched.docx", _catalog(tmp))


# -- selection --------------------------------------------------------------------------------------------


@case(
    "Selection",
    "A `--where` that needs gigabytes",
    "`--where \"(SELECT length(string_agg(repeat('x', 1000), '')) FROM range(10000000)) > 0\"`",
)
def _where_memory(tmp: Path) -> None:
    from skuforge.catalog import open_catalog, select

    where = "(SELECT length(string_agg(repeat('x', 1000), '')) FROM range(10000000)) > 0"
    list(select(open_catalog(_catalog(tmp)), where=where))


@case("Selection", "A `--where` naming a column the catalog lacks", '`--where "price < 20"` on `sku,title`.')
def _where_column(tmp: Path) -> None:
    from skuforge.catalog import open_catalog, select

    list(select(open_catalog(_catalog(tmp)), where="price < 20"))


# -- recipes ----------------------------------------------------------------------------------------------

BLOWUP = """\
name: blowup
version: "1"
instruction: "Write a title. {{ title|center(999999999) }}"
input: {fields: [title]}
output: {fields: {title: string}}
"""


@case(
    "Recipes", "A template that would build a gigabyte", "`{{ title|center(999999999) }}` in `blowup.yaml`."
)
def _template_blowup(tmp: Path) -> None:
    from skuforge.recipes import load_recipe

    load_recipe(str(write(tmp / "blowup.yaml", BLOWUP)))


@case("Recipes", "A recipe directory that does not exist", "`--recipe-dir recipes/` with no such folder.")
def _recipe_dir(tmp: Path) -> None:
    from skuforge.recipes import check_recipe_dirs

    check_recipe_dirs([tmp / "recipes"])


@case("Recipes", "A misspelt recipe name", "`--recipe titel`")
def _recipe_name(tmp: Path) -> None:
    from skuforge.recipes import load_recipe

    load_recipe("titel")


# -- review -----------------------------------------------------------------------------------------------

ATTRIBUTES = """\
name: attrs
version: "1"
targets: {from: "['color', 'pattern']", when: missing}
input: {fields: [title]}
instruction: Fill in the missing attributes.
"""


@case("Review", "A CSV given to `review import`", "`skuforge review import JOB review.csv`")
def _review_csv(tmp: Path) -> None:
    from skuforge.review.excel import _read_rows

    list(_read_rows(write(tmp / "review.csv", "Row,Step,Decision\nA1,title,approve\n")))


@case("Review", "A damaged review workbook", "`review.xlsx` cut short by an interrupted copy.")
def _review_truncated(tmp: Path) -> None:
    from skuforge.review.excel import _read_rows

    workbook = Workbook()
    workbook.active.append(["Row"] * 50)
    workbook.save(tmp / "good.xlsx")
    with zipfile.ZipFile(tmp / "good.xlsx") as good:
        assert good.namelist()
    list(_read_rows(write(tmp / "review.xlsx", (tmp / "good.xlsx").read_bytes()[:700])))


@case(
    "Review",
    "An edit with a field the step does not output",
    '`{"color": "red", "price": "0"}` as the edit of an attributes step that outputs color and pattern.',
)
def _review_field(tmp: Path) -> None:
    from skuforge.recipes import load_recipe
    from skuforge.review.edits import check_fields

    recipe = load_recipe(str(write(tmp / "attrs.yaml", ATTRIBUTES)))
    check_fields(recipe.steps[0], recipe.params, "A1", {"color": "blue"}, {"color": "red", "price": "0"})


# -- runs -----------------------------------------------------------------------------------------------


@case(
    "Runs",
    "A catalog that already has a generated column",
    "`catalog.csv` with `brand` and `brand_generated` (a previous run's output used as input), recipe "
    "`attributes`.",
)
def _generated_collision(tmp: Path) -> None:
    from skuforge.engine.context import JobContext
    from skuforge.engine.spec import JobSpec

    path = write(tmp / "catalog.csv", "sku,title,brand,brand_generated\nA1,Acme mug,,Acme\n")
    JobContext.from_spec(JobSpec.create(path, recipe="attributes", model="fake:")).check_ready()


@case(
    "Runs",
    "`--max-cost` for a model the price table does not know",
    "`skuforge run catalog.csv --model openai:my-finetune --max-cost 5`",
)
def _unpriced_budget(tmp: Path) -> None:
    from skuforge.providers.prices import require_price

    home = os.environ.get("SKUFORGE_HOME")
    os.environ["SKUFORGE_HOME"] = str(tmp / "home")  # the message names $SKUFORGE_HOME/prices.yaml
    try:
        require_price("openai:my-finetune")
    finally:
        if home is None:
            os.environ.pop("SKUFORGE_HOME")
        else:
            os.environ["SKUFORGE_HOME"] = home


@case("Runs", "`--price` that is not IN/OUT", "`--price 0.25`")
def _bad_price(tmp: Path) -> None:
    from skuforge.providers.prices import parse_price

    parse_price("0.25")


@case(
    "Runs",
    "`--from-trial` with an option the trial fixed",
    '`skuforge run --from-trial JOB --where "price < 20"`',
)
def _from_trial_clash(tmp: Path) -> None:
    from skuforge.cli.run import run_from_trial
    from skuforge.config import Settings

    run_from_trial("j-trial", {"where": "price < 20", "catalog": None}, Settings())


@case("Runs", "An unknown `--mode`", "`skuforge run catalog.csv --mode nightly`")
def _unknown_mode(tmp: Path) -> None:
    from skuforge.engine.executors import check_choice

    check_choice("nightly", "local")


# -- the document -----------------------------------------------------------------------------------------

HEADER = """\
# Errors: bad input and what skuforge says

Every mistake in a user's input gets an error that says what is wrong, where, and what to do next, and
never a traceback: the CLI prints the message and the hint below and exits with code 2 (`SKUFORGE_DEBUG=1`
shows the traceback); the web API returns the same text as `{"error": {"code", "message", "hint"}}`. What
can be checked before the first request is sent (the catalog, the output path, the recipe) is checked then.

This page is generated by `tests/test_errors_doc.py` from the cases in it, so each error is the one
skuforge gives today. Folders in the messages are shown relative to where the input was made.
"""


def error_of(item: Case, tmp: Path) -> UserError:
    with pytest.raises(UserError) as caught:
        item.trigger(tmp)
    return caught.value


def shown(error: UserError, tmp: Path) -> str:
    text = f"Error: {error.message}" + (f"\n{error.hint}" if error.hint else "")
    return text.replace(f"{tmp}/", "").replace(str(tmp), ".")


def render(found: list[tuple[Case, str]]) -> str:
    parts = [HEADER]
    area = None
    for item, text in found:
        if item.area != area:
            area = item.area
            parts.append(f"## {area}\n")
        parts.append(f"### {item.title}\n\nGiven {item.given}\n\n```\n{text}\n```\n")
    return "\n".join(parts)


@pytest.mark.parametrize("item", CASES, ids=[c.title for c in CASES])
def test_each_bad_input_gets_a_user_error_with_a_message_and_a_hint(item: Case, tmp_path: Path) -> None:
    error = error_of(item, tmp_path)
    assert error.message and error.hint
    assert error.exit_code == 2


def test_docs_errors_md_shows_the_error_each_case_gets(tmp_path_factory: pytest.TempPathFactory) -> None:
    found = []
    for number, item in enumerate(CASES):
        tmp = tmp_path_factory.mktemp(f"case{number}")
        found.append((item, shown(error_of(item, tmp), tmp)))
    text = render(found)
    if os.environ.get(REGENERATE):
        DOC.write_text(text, encoding="utf-8")
    assert DOC.exists(), f"docs/errors.md is missing; write it with {REGENERATE}=1"
    assert DOC.read_text(encoding="utf-8") == text, (
        f"docs/errors.md is out of date; rewrite it with {REGENERATE}=1"
    )
