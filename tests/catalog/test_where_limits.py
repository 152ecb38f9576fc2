"""A `--where` predicate runs within a time and a memory limit, and says so when it hits one."""

from __future__ import annotations

from pathlib import Path

import pytest

from skuforge.catalog import open_catalog, predicate, select
from skuforge.errors import SelectionError


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "products.csv"
    path.write_text("sku,price\n" + "".join(f"A{i},{i}\n" for i in range(50)), encoding="utf-8")
    return path


def test_a_predicate_that_would_run_for_hours_is_stopped_by_the_time_limit(
    catalog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predicate, "WHERE_TIMEOUT_S", 0.5)  # 10 s in use; the query needs hours either way
    where = "(SELECT count(*) FROM range(100000000000)) > 0"
    with pytest.raises(SelectionError) as caught:
        list(select(open_catalog(catalog), where=where))
    assert caught.value.message == (
        f"The filter {where!r} cannot be applied to products.csv: it ran for more than 0.5 s on 50 rows "
        "and was stopped."
    )
    assert "Simplify it." in (caught.value.hint or "")


def test_a_predicate_that_needs_gigabytes_is_stopped_by_the_memory_limit(catalog: Path) -> None:
    where = "(SELECT length(string_agg(repeat('x', 1000), '')) FROM range(10000000)) > 0"
    with pytest.raises(
        SelectionError, match="it needed more than 512MB of memory on 50 rows and was stopped"
    ):
        list(select(open_catalog(catalog), where=where))


def test_an_ordinary_predicate_is_unaffected_by_the_limits(catalog: Path) -> None:
    rows = list(select(open_catalog(catalog), where="CAST(price AS INTEGER) >= 48"))
    assert [row.data["sku"] for row in rows] == ["A48", "A49"]
