"""Catalogs and helpers for engine tests."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from skuforge.engine.runner import Runner
from skuforge.engine.spec import JobSpec, Selection
from skuforge.providers.fake import FakeProvider
from skuforge.store import Store, open_store

COLORS = ["Black", "White", "Red", "Navy Blue", ""]
MATERIALS = ["Stainless Steel", "Cotton", "", "Copper", "Polyester"]


def default_title(i: int) -> str:
    color, material = COLORS[i % 5], MATERIALS[(i // 5) % 5]
    return f"Acme Widget {i} {color or 'Grey'} {material or 'Plastic'} 12 cm"


def write_catalog(path: Path, rows: int, *, title_of: Callable[[int], str] = default_title) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["sku", "title", "category", "brand", "color", "material", "description"])
        for i in range(rows):
            color, material = COLORS[i % 5], MATERIALS[(i // 5) % 5]
            title = title_of(i)
            w.writerow(
                [
                    f"SKU-{i:05d}",
                    title,
                    ["Kitchen", "Shoes", "Toys"][i % 3],
                    "Acme" if i % 4 else "",
                    color,
                    material,
                    f"A sturdy widget number {i}, {material or 'plastic'} body, 12 cm long.",
                ]
            )
    return path


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "catalog.csv", 30)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.close()


class Harness:
    """Runs jobs in-process with one FakeProvider whose calls the test can count."""

    def __init__(self, store: Store, fake: FakeProvider) -> None:
        self.store, self.fake = store, fake

    def job(self, catalog: Path, *, recipe: str = "attributes", **fields: object):  # type: ignore[no-untyped-def]
        from skuforge.cli.run import start_job

        selection = fields.pop("selection", Selection())
        spec = JobSpec.create(
            catalog, recipe=recipe, model="fake:", selection=selection, cache=False, **fields
        )
        job, _ = start_job(self.store, spec)
        return job

    def run(self, job, **kwargs):  # type: ignore[no-untyped-def]
        import asyncio

        runner = Runner(
            self.store, self.store.get_job(job.id), provider_factory=lambda _m: self.fake, **kwargs
        )
        progress = asyncio.run(runner.run())
        self.store.flush()
        return runner, progress


@pytest.fixture
def harness(store: Store) -> Harness:
    return Harness(store, FakeProvider())
