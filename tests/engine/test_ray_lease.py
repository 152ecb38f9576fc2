"""The Ray executor's coordinator and leases, driven directly (no Ray needed): how limits and money are
shared between workers, and what happens to a lease whose worker is gone."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from skuforge.engine.ray_lease import Coordinator, LeaseClient, Leased, Shares
from skuforge.errors import BudgetExceeded
from skuforge.providers.base import Message, Request
from skuforge.providers.fake import FakeProvider
from skuforge.providers.prices import Price
from skuforge.store import open_store


class Local:
    """A coordinator called in-process, the way a Ray actor handle is called (`.method.remote(...)`)."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.coordinator, name)
        calls = self.calls

        class Remote:
            @staticmethod
            def remote(*args: Any) -> Any:
                calls[name] = calls.get(name, 0) + 1
                result = method(*args)
                if asyncio.iscoroutine(result):
                    return asyncio.ensure_future(result)
                future = asyncio.get_running_loop().create_future()
                future.set_result(result)
                return future

        return Remote


def request(text: str = "Write a tagline for a kettle.") -> Request:
    return Request(messages=[Message(role="user", content=text)], max_tokens=50)


def test_workers_share_the_concurrency_and_a_waiting_worker_gets_slots_when_one_goes_idle() -> None:
    async def scenario() -> list[int]:
        handle = Local(Coordinator(Shares(concurrency=3, workers=2)))
        first, second = LeaseClient(handle, "a"), LeaseClient(handle, "b")
        slots = [await first.open(), await second.open()]
        third = LeaseClient(handle, "c")  # a replacement worker while both others hold their slots
        waiting = asyncio.ensure_future(third.open())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await first.release()
        slots.append(await waiting)
        return slots

    assert asyncio.run(scenario()) == [2, 1, 2]


def test_many_requests_take_one_lease_call_not_one_per_request() -> None:
    async def scenario() -> tuple[int, dict[str, int]]:
        handle = Local(Coordinator(Shares(concurrency=8, workers=1)))
        lease = LeaseClient(handle, "w")
        client = Leased(FakeProvider(), lease, price=None)
        await lease.open()
        await asyncio.gather(*(client.generate(request(f"kettle {i}")) for i in range(200)))
        await lease.release()
        return lease.slots, handle.calls

    slots, calls = asyncio.run(scenario())
    assert slots == 8 and calls == {"lease": 1, "release": 1}


def test_leases_under_an_rpm_limit_are_spaced_so_the_cluster_keeps_to_it() -> None:
    async def scenario() -> tuple[int, float]:
        coordinator = Coordinator(Shares(concurrency=4, rpm=600, workers=2, burst_s=0.0))
        handle = Local(coordinator)
        leases = [LeaseClient(handle, "a", batch_requests=5), LeaseClient(handle, "b", batch_requests=5)]
        loop = asyncio.get_running_loop()
        start = loop.time()
        for lease in leases:
            await lease.open()
        for _ in range(4):  # each worker takes 20 requests: 40 in all at 10 per second
            for lease in leases:
                for _ in range(5):
                    await lease.take(10.0, 0.0)
        return coordinator.leases, loop.time() - start

    leases, elapsed = asyncio.run(scenario())
    assert leases >= 8  # a lease never covers more than its worker's share of one second (5 requests)
    assert elapsed >= 3.0  # 40 requests at 600 RPM need 4 s; the first leases go without waiting


def test_a_lease_whose_worker_died_expires_freeing_its_slots_and_counting_its_money_as_uncertain(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")

    async def scenario() -> tuple[Coordinator, int]:
        shares = Shares(concurrency=2, workers=1, max_cost=1.0, ttl_s=0.2)
        coordinator = Coordinator(shares, store_url=store.url, job_id="j")
        handle = Local(coordinator)
        dead = LeaseClient(handle, "dead")
        await dead.open()
        await dead.take(100.0, 0.01)  # sent, then the worker is killed: no report, no heartbeat
        dead.held = False  # (its heartbeat task dies with it)
        coordinator.expire(math.inf)
        alive = LeaseClient(handle, "alive")
        return coordinator, await alive.open()

    coordinator, slots = asyncio.run(scenario())
    assert slots == 2 and coordinator.expired == 1
    assert coordinator.budget.uncertain >= 0.01  # what the dead worker held may have been charged
    coordinator.close()
    assert store.ledger("j").uncertain == pytest.approx(coordinator.budget.uncertain)
    store.close()


def test_the_budget_is_never_exceeded_by_what_leases_hand_out(tmp_path: Path) -> None:
    price = Price(input=1000.0, output=1000.0)  # USD per million tokens: about 0.06 a request here

    async def scenario() -> tuple[int, float, float]:
        coordinator = Coordinator(Shares(concurrency=8, workers=2, max_cost=1.0))
        handle = Local(coordinator)
        sent = 0
        workers = [LeaseClient(handle, name, batch_requests=4) for name in ("a", "b")]
        clients = [Leased(FakeProvider(), lease, price) for lease in workers]

        async def one(i: int) -> None:
            nonlocal sent
            try:
                await clients[i % 2].generate(request(f"kettle number {i}"))
                sent += 1
            except BudgetExceeded:
                pass

        await asyncio.gather(*(one(i) for i in range(60)))
        for lease in workers:
            await lease.release()
        return sent, coordinator.budget.total, coordinator.budget.reserved

    sent, spent, reserved = asyncio.run(scenario())
    assert 0 < sent < 60 and spent <= 1.0 and reserved == pytest.approx(0.0, abs=1e-9)


def test_a_report_from_an_expired_lease_is_not_counted_twice() -> None:
    async def scenario() -> Coordinator:
        coordinator = Coordinator(Shares(concurrency=1, max_cost=1.0))
        lease = LeaseClient(Local(coordinator), "slow")
        await lease.open()
        await lease.take(10.0, 0.2)
        coordinator.expire(math.inf)  # no heartbeat for a whole TTL (a frozen worker): its money is uncertain
        lease.settle(0.2, 0.15)  # ... then its answer arrives after all
        await lease.release()
        return coordinator

    coordinator = asyncio.run(scenario())
    assert coordinator.budget.spent == 0.0 and coordinator.budget.total == pytest.approx(1.0)  # not 1.15
