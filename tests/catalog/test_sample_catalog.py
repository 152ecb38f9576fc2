"""The sample catalog in examples/ is what its make script writes, and is the data the README promises."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path
from xml.etree import ElementTree

from skuforge.catalog import open_catalog

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_make_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_catalog", EXAMPLES / "make_catalog.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def xlsx_parts(path: Path) -> dict[str, str]:
    """Each part of a workbook as canonical XML: openpyxl writes `/>` or ` />` depending on whether lxml
    is installed, and the content is what matters."""
    with zipfile.ZipFile(path) as book:
        return {name: ElementTree.canonicalize(book.read(name).decode()) for name in book.namelist()}


def test_make_script_reproduces_the_committed_files(tmp_path: Path) -> None:
    script = load_make_script()
    script.write_xlsx(tmp_path / "catalog.xlsx")
    script.write_gb18030_csv(tmp_path / "catalog.csv")
    assert xlsx_parts(tmp_path / "catalog.xlsx") == xlsx_parts(EXAMPLES / "catalog.xlsx")
    assert (tmp_path / "catalog.csv").read_bytes() == (EXAMPLES / "catalog.csv").read_bytes()


def test_sample_catalog_mixes_languages_and_leaves_attributes_to_fill() -> None:
    catalog = open_catalog(EXAMPLES / "catalog.xlsx", id_column="sku")
    rows = list(catalog.rows())
    chinese = [r for r in rows if any("\u4e00" <= ch <= "\u9fff" for ch in r.data["title"])]
    attributes = ["brand", "color", "material", "size", "weight"]
    empty = sum(1 for r in rows for name in attributes if r.data[name] is None)
    assert catalog.sheet == "Products"
    assert len(rows) == 20
    assert len(chinese) == 10
    assert 0.25 <= empty / (len(rows) * len(attributes)) <= 0.45
    assert sorted(r.data["image"] for r in rows if r.data["image"]) == [
        "images/B074M5HPBD.jpg", "images/B0799CK52K.jpg", "images/B07GTFSCHB.jpg",
    ]  # fmt: skip
