"""Catalog I/O: streaming readers for CSV/TSV/XLSX/JSONL/Parquet, selection by SQL filter and sample,
and atomic, formula-safe writers.

    catalog = open_catalog("products.xlsx", sheet="Products", id_column="sku")
    for row in select(catalog, where="category = 'Shoes' AND price > 20", sample=20, seed=1):
        print(row.row_id, row.line, row.data["title"])
    write_catalog("out.xlsx", catalog.columns + ["selling_points"], enriched_rows, failures=failed)
"""

from skuforge.catalog.cells import neutralise_formula
from skuforge.catalog.formats import SUPPORTED_FORMATS, check_output_path, infer_format, output_path_for
from skuforge.catalog.reader import Catalog, CatalogRow, open_catalog
from skuforge.catalog.selection import select
from skuforge.catalog.writers import FAILURE_COLUMNS, WriteReport, write_catalog

__all__ = [
    "FAILURE_COLUMNS",
    "SUPPORTED_FORMATS",
    "Catalog",
    "CatalogRow",
    "WriteReport",
    "check_output_path",
    "infer_format",
    "neutralise_formula",
    "open_catalog",
    "output_path_for",
    "select",
    "write_catalog",
]
