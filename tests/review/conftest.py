"""A real job to review: the `fake:` provider over a six-product catalog, run through the CLI.

The test recipes cap titles at 20 characters, so the fake model's longer answers are flagged and go to the
review queue while short ones pass.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from skuforge.cli.main import main
from skuforge.store import ItemRecord, Store, open_store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "review"


@dataclass
class ReviewJob:
    store: Store
    job_id: str
    catalog: Path
    recipe: Path
    workdir: Path

    def items(self, status: str | None = None) -> list[ItemRecord]:
        self.store.flush()
        return list(self.store.items(self.job_id, status=status))

    def item(self, row_id: str) -> ItemRecord:
        return next(i for i in self.items() if i.row_id == row_id)

    def rerun(self, *extra: str) -> None:
        assert run_cli(self.catalog, self.recipe, self.workdir, *extra) == 0


def run_cli(catalog: Path, recipe: Path, workdir: Path, *extra: str) -> int:
    return main(
        [
            "run",
            str(catalog),
            "-r",
            str(recipe),
            "-m",
            "fake:",
            "--id-column",
            "sku",
            "-q",
            "-o",
            str(workdir / "out.csv"),
            *extra,
        ]
    )


@pytest.fixture
def make_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ReviewJob]]:
    """Run a test recipe over a copy of the catalog and open the store on the finished job."""
    monkeypatch.setenv("SKUFORGE_USER", "ana")
    stores: list[Store] = []

    def make(recipe: str = "short_title", *extra: str, recipe_text: str | None = None) -> ReviewJob:
        catalog = tmp_path / "catalog.csv"
        shutil.copy(FIXTURES / "catalog.csv", catalog)
        recipe_path = tmp_path / f"{recipe}.yaml"
        recipe_path.write_text(
            recipe_text or (FIXTURES / f"{recipe}.yaml").read_text(encoding="utf-8"), "utf-8"
        )
        assert run_cli(catalog, recipe_path, tmp_path, *extra) == 0
        store = open_store()
        stores.append(store)
        job_id = store.list_jobs(limit=1)[0].id
        return ReviewJob(store, job_id, catalog, recipe_path, tmp_path)

    yield make
    for store in stores:
        store.close()
