"""How many threads the local model gets: every physical core on an idle machine, one fewer per core other
processes keep busy now, at least one; `SKUFORGE_THREADS` overrides it."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest

from skuforge.errors import ConfigError
from skuforge.providers import local
from skuforge.providers.local import _threads, busy_cores, choose_threads


def spin(seconds: float, started: Any = None) -> None:
    if started is not None:
        started.set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_an_idle_machine_gives_every_core() -> None:
    assert choose_threads(busy=0.0, cores=2) == 2
    assert choose_threads(busy=0.3, cores=8) == 8


def test_each_busy_core_takes_one_thread_away_down_to_one() -> None:
    assert choose_threads(busy=1.0, cores=2) == 1
    assert choose_threads(busy=2.6, cores=8) == 5
    assert choose_threads(busy=7.0, cores=2) == 1


def test_this_process_own_work_is_not_counted_as_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    machine, own = iter([100.0, 101.0]), iter([20.0, 20.5])  # the machine busy 1 s, half of it this process
    monkeypatch.setattr(local, "_machine_busy_s", lambda: next(machine))
    monkeypatch.setattr(local, "_own_cpu_s", lambda: next(own))
    assert 0 < busy_cores(window=0.5) <= 1.0  # 0.5 s of others' work over a window of at least 0.5 s


def test_without_proc_stat_the_load_average_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable() -> float:
        raise OSError("no /proc here")

    monkeypatch.setattr(local, "_machine_busy_s", unreadable)
    monkeypatch.setattr(local.os, "getloadavg", lambda: (3.0, 2.0, 1.0))
    assert busy_cores(window=0.01) == 3.0


def test_a_process_spinning_beside_it_counts_as_busy() -> None:
    started = multiprocessing.Event()
    spinner = multiprocessing.Process(target=spin, args=(10.0, started), daemon=True)
    spinner.start()
    try:
        assert started.wait(30)
        measured = busy_cores(window=0.5)
    finally:
        spinner.terminate()
        spinner.join()
    assert measured > 0.5  # one core kept busy (more when the machine is loaded)


def test_the_environment_overrides_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKUFORGE_THREADS", "3")
    assert _threads(None) == 3
    monkeypatch.setenv("SKUFORGE_THREADS", "many")
    with pytest.raises(ConfigError, match="SKUFORGE_THREADS"):
        _threads(None)


def test_threads_spin_a_moment_only_when_they_have_every_core() -> None:
    assert local.wait_policy(2, cores=2) is None  # libgomp's default: spin briefly, then sleep
    assert local.wait_policy(1, cores=2) == "PASSIVE"  # beside a busy process: sleep at once
