"""Runs against a real local OpenAI-compatible mock server over HTTP: faults, and the key kept secret."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from skuforge.cli.main import main
from skuforge.cli.run import start_job
from skuforge.config import Limits
from skuforge.engine.runner import Runner
from skuforge.engine.spec import JobSpec
from skuforge.store import open_store
from skuforge.testing.mock_openai import MockConfig, MockServer
from tests.engine.conftest import write_catalog


def only_job(home: Path):  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{home / 'skuforge.db'}")
    (job,) = store.list_jobs()
    return store, job


def test_openai_provider_against_the_mock_writes_one_row_per_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path
) -> None:
    path = write_catalog(tmp_path / "c.csv", 25)
    with MockServer(MockConfig()) as mock:
        monkeypatch.setenv("OPENAI_BASE_URL", mock.url)
        code = main(
            [
                "run",
                str(path),
                "--recipe",
                "attributes",
                "--model",
                "openai:mock-model",
                "--out",
                str(tmp_path / "o.csv"),
                "--quiet",
            ]
        )
        stats = mock.stats.snapshot()
    assert code == 0
    lines = (tmp_path / "o.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) == 26
    assert stats["endpoints"]["/v1/chat/completions"] == stats["unique_prompts"] == 25
    assert stats["endpoints"]["/v1/models"] == 1  # the preflight: URL, key and model, before the run
    assert stats["resent_after_success"] == 0


def test_a_faulty_server_loses_no_row_and_duplicates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path
) -> None:
    """2,000 rows against 429s, 500s, dropped connections, hangs and malformed bodies. A prompt is sent
    again after the server answered it only when the client had not seen that answer: its attempt timed
    out, or it was still waiting when it sent a hedged copy (on a loaded machine an answer may sit unread
    past either), so re-sends are bounded by the client's own timeouts and hedges, never by time."""
    path = write_catalog(tmp_path / "c.csv", 2000)
    config = MockConfig(
        p429=0.02, retry_after_s=0.05, p500=0.02, pdrop=0.02, phang=0.01, pmalformed=0.02, hang_s=30
    )
    with MockServer(config) as mock:
        monkeypatch.setenv("OPENAI_BASE_URL", mock.url)
        store = open_store()
        limits = Limits(concurrency=64, timeout_s=5)
        spec = JobSpec.create(path, recipe="title", model="openai:mock-model", limits=limits, out=None)
        job, _ = start_job(store, spec)
        runner = Runner(store, job)
        asyncio.run(runner.run())
        store.flush()
        stats = mock.stats.snapshot()
    assert sum(stats["faults"].values()) > 100, stats["faults"]
    items = list(store.items(job.id))
    assert len(items) == 2000 and len({i.row_id for i in items}) == 2000
    assert all(i.status in ("done", "flagged", "failed") for i in items)
    assert all(i.error for i in items if i.status == "failed")
    calls = runner.call_stats
    assert stats["resent_after_success"] <= calls.timeouts + calls.deadline_timeouts + calls.hedges
    store.close()


def test_the_api_key_never_reaches_the_store_the_cache_or_the_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "sk-test-DO-NOT-LEAK-1234567890"
    path = write_catalog(tmp_path / "c.csv", 5)
    out = tmp_path / "o.xlsx"
    with MockServer(MockConfig(api_key=secret)) as mock:
        monkeypatch.setenv("OPENAI_BASE_URL", mock.url)
        monkeypatch.setenv("OPENAI_API_KEY", secret)
        assert (
            main(["run", str(path), "--recipe", "title", "--model", "openai:mock-model", "--out", str(out)])
            == 0
        )
        monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-0000")
        main(
            [
                "run",
                str(path),
                "--recipe",
                "title",
                "--model",
                "openai:mock-model",
                "--no-cache",
                "--set",
                "max_chars=50",
                "--out",
                str(tmp_path / "o2.xlsx"),
            ]
        )
    printed = capsys.readouterr()
    assert secret not in printed.out + printed.err and "sk-wrong-key-0000" not in printed.out + printed.err
    files = [*_isolated_home.rglob("*"), out, tmp_path / "o2.xlsx"]
    for file in files:
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), file
            assert b"sk-wrong-key-0000" not in file.read_bytes(), file
