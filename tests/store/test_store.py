"""The job store keeps every outcome, survives reopening, and pages items in catalog order."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from skuforge.errors import ConfigError, NotFoundError
from skuforge.store import ItemOutcome, open_store


def outcome(i: int, status: str = "done", **fields: object) -> ItemOutcome:
    return ItemOutcome(
        row_id=f"sku-{i}",
        row_index=i,
        step="attributes",
        key=f"k{i}",
        status=status,
        output={"color": f"c{i}"},
        **fields,  # type: ignore[arg-type]
    )


def test_recorded_outcomes_survive_reopening_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = open_store(url)
    job = store.create_job(kind="run", catalog="c.csv", recipe="attributes", model="fake:")
    store.record(job.id, [outcome(i) for i in range(500)])
    store.close()

    again = open_store(url)
    items = list(again.items(job.id))
    assert [i.row_index for i in items] == list(range(500))
    assert items[7].output == {"color": "c7"}
    assert again.counts(job.id).done == 500


def test_recording_the_same_item_again_replaces_it(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    job = store.create_job(kind="run", catalog="c.csv", recipe="attributes")
    store.record(job.id, [outcome(1, status="failed", error="timeout")])
    store.record(job.id, [outcome(1, input_tokens=10, cost=0.5)])
    store.flush()
    (item,) = store.items(job.id)
    assert (item.status, item.error, item.input_tokens) == ("done", None, 10)
    assert store.counts(job.id).cost == pytest.approx(0.5)


def test_items_in_range_returns_only_that_chunk(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    job = store.create_job(kind="run", catalog="c.csv", recipe="attributes")
    store.record(job.id, [outcome(i) for i in range(100)])
    store.flush()
    assert sorted(i.row_index for i in store.items_in_range(job.id, 10, 19)) == list(range(10, 20))


def test_items_filter_by_status_and_page(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    job = store.create_job(kind="run", catalog="c.csv", recipe="attributes")
    store.record(job.id, [outcome(i, status="flagged" if i % 3 == 0 else "done") for i in range(30)])
    store.flush()
    flagged = list(store.items(job.id, status="flagged", batch=4))
    assert [i.row_index for i in flagged] == list(range(0, 30, 3))
    assert [i.row_index for i in store.items(job.id, offset=5, limit=3)] == [5, 6, 7]


def test_unknown_job_error_suggests_listing_jobs(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(NotFoundError) as info:
        store.get_job("j-nope")
    assert "skuforge jobs" in (info.value.hint or "")


def test_find_job_returns_the_newest_run_with_that_fingerprint(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    store.create_job(kind="run", catalog="a", recipe="r", fingerprint="fp1")
    newer = store.create_job(kind="run", catalog="a", recipe="r", fingerprint="fp1")
    store.create_job(kind="trial", catalog="a", recipe="r", fingerprint="fp1")
    found = store.find_job("fp1")
    assert found is not None and found.id == newer.id
    assert store.find_job("other") is None


def test_a_store_written_before_answers_were_kept_finds_its_finished_work_by_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = open_store(url)
    job = store.create_job(kind="run", catalog="c.csv", recipe="title")
    done = ItemOutcome(row_id="1", row_index=0, step="title", key="k1", status="done", output={"t": 1})
    failed = ItemOutcome(row_id="2", row_index=1, step="title", key="k2", status="failed", error="boom")
    store.record(job.id, [done, failed])
    store.flush()
    with store.engine.begin() as conn:  # as schema 1 left it: no answers table content, version 1
        conn.exec_driver_sql("DELETE FROM answers")
        conn.exec_driver_sql("UPDATE skuforge_meta SET value = '1' WHERE key = 'schema_version'")
    store.close()
    upgraded = open_store(url)
    found = upgraded.finished_by_keys(job.id, ["k1", "k2"])
    assert list(found) == ["k1"] and found["k1"].output == {"t": 1}
    upgraded.close()


def test_the_sqlite_ddl_is_what_the_sqlalchemy_schema_compiles_to() -> None:
    from skuforge.store.ddl import SQLITE_DDL, generate

    assert generate() == SQLITE_DDL, "schema.py changed: run `python -m skuforge.store.ddl` into store/ddl.py"


def test_the_default_store_does_its_work_without_importing_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    script = """
import sys
from skuforge.store import ItemOutcome, LedgerState, open_store
store = open_store(sys.argv[1])
job = store.create_job(kind="run", catalog="c.csv", recipe="title", params={"tone": "plain"})
done = ItemOutcome(row_id="1", row_index=0, step="title", key="k1", status="done", output=[1])
store.record(job.id, [done])
store.record_spend(job.id, LedgerState(spent=0.25))
store.hold(job.id, 1.0)
store.flush()
store.update_job(job.id, state="done", totals={"rows": 1})
assert store.get_job(job.id).totals == {"rows": 1} and store.counts(job.id).done == 1
assert store.ledger(job.id) == LedgerState(spent=0.25, held=1.0)
assert store.finished_by_keys(job.id, ["k1"])["k1"].output == [1]
store.close()
print(sorted(m for m in sys.modules if m.startswith("sqlalchemy")))
"""
    done = subprocess.run([sys.executable, "-c", script, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_store_from_a_newer_skuforge_is_refused_with_what_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    open_store(url).close()
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute("UPDATE skuforge_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(ConfigError) as info:
        open_store(url)
    assert "newer skuforge" in info.value.message and "Upgrade skuforge" in (info.value.hint or "")


def test_a_store_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "s.db").write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(ConfigError) as info:
        open_store(f"sqlite:///{tmp_path / 's.db'}")
    assert str(tmp_path / "s.db") in info.value.message


def test_updating_a_column_the_table_lacks_is_refused(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    job = store.create_job(kind="run", catalog="c.csv", recipe="title")
    with pytest.raises(ValueError, match="no column colour"):
        store.update_job(job.id, colour="red")
    with pytest.raises(ValueError, match="no column state"):
        store.update_item(job.id, "1", "title", state="done")
