"""Hedged requests and adaptive deadlines: a stuck request costs a second copy, not the whole timeout."""

from __future__ import annotations

import asyncio

import pytest

from skuforge.calls import CallStats, Hedged, Limited, build_client
from skuforge.calls.hedge import Latencies, _Admission, _Race
from skuforge.config import Limits
from skuforge.errors import TransientError
from skuforge.providers.base import Message, Provider, Request, Result
from skuforge.providers.fake import FakeProvider


class Paced(Provider):
    """Answers after `delay_s`; the calls listed in `stuck` (by number, from 0) never answer, those in
    `failing` fail (a server error)."""

    def __init__(
        self, delay_s: float = 0.005, stuck: set[int] | None = None, failing: set[int] | None = None
    ) -> None:
        self.delay_s, self.stuck, self.failing = delay_s, stuck or set(), failing or set()
        self.calls = self.cancelled = 0

    async def generate(self, request: Request) -> Result:
        number = self.calls
        self.calls += 1
        try:
            await asyncio.sleep(3600 if number in self.stuck else self.delay_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if number in self.failing:
            raise TransientError("The server had an error.", "It is sent again.")
        return Result(text=f"answer {number}")


def ask(text: str = "hello") -> Request:
    return Request(messages=[Message(role="user", content=text)])


async def warm(client: Provider, n: int = 40) -> None:
    for i in range(n):
        await client.generate(ask(f"warm {i}"))


def test_a_stuck_request_gets_a_second_copy_and_the_first_answer_wins() -> None:
    async def scenario() -> tuple[Result, Paced, CallStats]:
        provider, stats = Paced(stuck={40}), CallStats()
        client = Limited(provider, concurrency=4, stats=stats)
        hedged = Hedged(client, timeout_s=3600, stats=stats, min_deadline_s=3600)
        await warm(hedged)
        result = await hedged.generate(ask("the stuck one"))
        return result, provider, stats

    result, provider, stats = asyncio.run(scenario())
    assert result.text == "answer 41"  # the copy answered; the stuck first copy was given up
    assert stats.hedges == 1 and stats.hedge_wins == 1
    assert provider.cancelled == 1


def test_a_stuck_request_whose_hedge_fails_gets_one_more_copy_not_its_deadline() -> None:
    async def scenario() -> tuple[Result, CallStats]:
        provider, stats = Paced(stuck={40}, failing={41}), CallStats()
        # hedges after 0.5 s at the earliest: a warm-up call slowed by a loaded machine is not hedged
        hedged = Hedged(provider, timeout_s=3600, stats=stats, min_deadline_s=3600, min_hedge_s=0.5)
        await warm(hedged)
        async with asyncio.timeout(60):
            return await hedged.generate(ask("the stuck one")), stats

    result, stats = asyncio.run(scenario())
    assert result.text == "answer 42" and stats.hedges == 2 and stats.hedge_wins == 1


def test_a_stuck_request_whose_hedge_hangs_too_gets_a_third_copy_not_its_deadline() -> None:
    async def scenario() -> tuple[Result, Paced, CallStats]:
        provider, stats = Paced(stuck={40, 41}), CallStats()
        hedged = Hedged(provider, timeout_s=3600, stats=stats, min_deadline_s=3600, min_hedge_s=0.5)
        await warm(hedged)
        async with asyncio.timeout(60):  # a defect shows as a failure, not as an hour
            return await hedged.generate(ask("the stuck one")), provider, stats

    result, provider, stats = asyncio.run(scenario())
    assert result.text == "answer 42" and stats.hedges == 2 and stats.hedge_wins == 1
    assert provider.cancelled == 2  # both stuck copies were given up


def test_a_stuck_request_whose_every_hedge_fails_is_given_back_to_the_retries_not_its_deadline() -> None:
    async def scenario() -> tuple[Paced, CallStats]:
        provider, stats = Paced(stuck={40}, failing={41, 42}), CallStats()
        hedged = Hedged(provider, timeout_s=3600, stats=stats, min_deadline_s=3600, min_hedge_s=0.5)
        await warm(hedged)
        async with asyncio.timeout(60):  # a defect shows as a failure, not as an hour
            with pytest.raises(TransientError):
                await hedged.generate(ask("the stuck one"))
        return provider, stats

    provider, stats = asyncio.run(scenario())
    assert stats.hedges == 2 and provider.cancelled == 1  # the stuck first copy was given up


def test_a_request_stuck_in_the_first_wave_is_hedged_once_the_latencies_are_known() -> None:
    """128 requests go out before any answer is back: the one that hangs does not wait the timeout."""

    async def scenario() -> tuple[list[Result], Paced, CallStats]:
        provider, stats = Paced(stuck={5}), CallStats()
        hedged = Hedged(provider, timeout_s=3600, stats=stats, min_deadline_s=3600, warmup=32)
        async with asyncio.timeout(60):  # a defect shows as a failure, not as an hour
            results = await asyncio.gather(*(hedged.generate(ask(f"first wave {i}")) for i in range(128)))
        return list(results), provider, stats

    results, provider, stats = asyncio.run(scenario())
    copy = int(results[5].text.split()[-1])
    assert len(results) == 128 and copy >= 128  # a copy of the stuck one answered, not the stuck call
    # on a loaded machine a slow request of the wave may be hedged too; the share caps them (5% of 128)
    assert 1 <= stats.hedge_wins <= stats.hedges <= 6 and provider.cancelled >= 1


def test_a_slow_answer_in_the_first_wave_is_not_cut_off_by_a_deadline_from_the_fastest() -> None:
    """The first 32 answers of a wave are its fastest; a deadline drawn from them would fail the slow
    rest. First-wave requests keep the configured timeout (here 5 s against a 0.05 s deadline)."""

    class Slow(Paced):
        async def generate(self, request: Request) -> Result:
            if "slow" in str(request.messages[0].content):
                await asyncio.sleep(0.3)
            return await super().generate(request)

    async def scenario() -> list[Result]:
        hedged = Hedged(Slow(), timeout_s=5.0, max_share=0.0, min_deadline_s=0.05, warmup=32)
        asks = [ask(f"quick {i}") for i in range(40)] + [ask("slow one")]
        return list(await asyncio.gather(*(hedged.generate(a) for a in asks)))

    assert len(asyncio.run(scenario())) == 41


def test_hedges_stay_within_their_share_of_requests() -> None:
    async def scenario() -> tuple[int, CallStats]:
        provider, stats = Paced(delay_s=0.001), CallStats()
        hedged = Hedged(provider, timeout_s=3600, stats=stats, max_share=0.05, min_hedge_s=0.0)
        await warm(hedged)
        provider.delay_s = 0.05  # now every request is far slower than the usual latency
        await asyncio.gather(*(hedged.generate(ask(f"slow {i}")) for i in range(60)))
        return hedged.sent, stats

    sent, stats = asyncio.run(scenario())
    assert 1 <= stats.hedges <= 0.05 * sent + 1


def test_past_the_adaptive_deadline_a_request_fails_to_be_retried_not_after_the_full_timeout() -> None:
    async def scenario() -> None:
        provider = Paced(stuck={40})
        hedged = Hedged(provider, timeout_s=3600, max_share=0.0, min_deadline_s=0.05)
        await warm(hedged)
        with pytest.raises(TransientError) as info:
            await hedged.generate(ask("stuck"))
        assert "usual latency" in info.value.message
        assert hedged.stats.deadline_timeouts == 1 and provider.cancelled == 1

    asyncio.run(scenario())


def test_time_spent_queued_in_the_limiter_counts_neither_for_the_hedge_nor_the_deadline() -> None:
    async def scenario() -> tuple[list[Result], CallStats]:
        provider, stats = Paced(delay_s=0.002), CallStats()
        limited = Limited(provider, concurrency=1, stats=stats)
        hedged = Hedged(limited, timeout_s=3600, stats=stats, min_deadline_s=0.05, min_hedge_s=0.0)
        await warm(hedged)
        provider.delay_s = 0.02  # 20 requests in a queue of one: the last waits ~0.4 s, 8x its deadline
        results = await asyncio.gather(*(hedged.generate(ask(f"queued {i}")) for i in range(20)))
        return list(results), stats

    results, stats = asyncio.run(scenario())
    assert len(results) == 20 and stats.deadline_timeouts == 0


def test_only_requests_to_a_server_are_hedged() -> None:
    def layers(client: Provider) -> list[str]:
        names = []
        while client is not None:
            names.append(type(client).__name__)
            client = getattr(client, "inner", None)  # type: ignore[assignment]
        return names

    assert "Hedged" not in layers(build_client(FakeProvider(), Limits(), cache=None))
    remote = FakeProvider()
    remote.remote = True
    assert "Hedged" in layers(build_client(remote, Limits(), cache=None))
    assert "Hedged" not in layers(build_client(remote, Limits(hedge_share=0), cache=None))


def test_latency_percentiles_follow_the_recent_answers() -> None:
    latencies = Latencies(size=100, every=10)
    for i in range(100):
        latencies.add(i / 100)
    assert latencies.quantile(0.5) == pytest.approx(0.5) and latencies.quantile(0.95) == pytest.approx(0.95)
    for _ in range(100):
        latencies.add(2.0)
    assert latencies.quantile(0.5) == 2.0


def test_a_run_drains_once_every_row_started_capacity_is_spare_and_nothing_queues_for_a_rate_limit() -> None:
    async def scenario() -> list[tuple[bool, float | None]]:
        limited = Limited(Paced(), concurrency=10, rpm=60_000)
        started_all = [False]
        hedged = Hedged(
            limited, timeout_s=3600, concurrency=10, min_hedge_s=0.0, winding_down=lambda: started_all[0]
        )
        await warm(hedged)
        p95 = hedged.latencies.quantile(0.95)
        assert p95 is not None
        assert not hedged.draining()  # rows are still to be started
        started_all[0] = True
        seen = [(hedged.draining(), hedged.hedge_after(draining=hedged.draining()))]
        hedged.in_flight = 5  # half the concurrency: busy
        seen.append((hedged.draining(), hedged.hedge_after(draining=hedged.draining())))
        hedged.in_flight = 1
        limited._waiters.append(None)  # type: ignore[arg-type]  # one request waits for its RPM
        seen.append((hedged.draining(), None))
        return [(d, None if after is None else after / p95) for d, after in seen]

    (idle, idle_after), (busy, busy_after), (queued, _) = asyncio.run(scenario())
    assert idle and idle_after == pytest.approx(1.1)
    assert not busy and busy_after == pytest.approx(1.5)
    assert not queued


def test_a_request_stuck_while_the_run_is_busy_is_not_copied_before_the_longer_delay() -> None:
    class Clocked(Paced):
        def __init__(self) -> None:
            super().__init__(stuck=set(range(40, 44)))
            self.started: list[float] = []

        async def generate(self, request: Request) -> Result:
            self.started.append(asyncio.get_running_loop().time())
            return await super().generate(request)

    async def scenario() -> tuple[list[float], float]:
        provider = Clocked()
        hedged = Hedged(provider, timeout_s=3600, concurrency=4, min_deadline_s=3600, max_share=0.5)
        await warm(hedged)
        p95 = hedged.latencies.quantile(0.95)
        assert p95 is not None
        stuck = [asyncio.ensure_future(hedged.generate(ask(f"stuck {i}"))) for i in range(4)]
        async with asyncio.timeout(60):
            await asyncio.gather(*stuck)  # all four hang, so the run stays busy until their copies answer
        return provider.started[40:], p95

    started, p95 = asyncio.run(scenario())
    first_copy = started[4]
    assert first_copy - started[3] >= 1.5 * p95  # the timer was set for 1.1 x p95, and waited on


def test_a_stuck_request_is_copied_after_the_shorter_delay_once_the_run_drains() -> None:
    async def scenario() -> tuple[int, float, int]:
        loop = asyncio.get_running_loop()
        spares: list[asyncio.Future[Result]] = []

        def spare() -> asyncio.Future[Result]:
            spares.append(loop.create_future())
            return spares[-1]

        delay = {"due": 1.5}
        race = _Race(loop, spare, lambda: delay["due"])
        race.add(loop.create_future())  # the stuck first copy
        admitted = _Admission(loop)
        started = admitted.at = loop.time() - 1.2  # past the drain delay (1.1), short of the busy one (1.5)
        race.arm(admitted, 1.1)
        race.disarm()
        race._on_timer()  # the timer fires while the run is busy: it waits on
        busy = (len(race.copies), race.timer.when() - started if race.timer else -1.0)
        delay["due"] = 1.1  # the run drains
        race.disarm()
        race._on_timer()
        race.disarm()
        return busy[0], busy[1], len(race.copies)

    copies_while_busy, rearmed_for, copies_once_draining = asyncio.run(scenario())
    assert copies_while_busy == 1 and rearmed_for == pytest.approx(1.5)
    assert copies_once_draining == 2


def test_a_request_held_in_a_limiters_queue_is_not_copied_and_its_delay_counts_from_admission() -> None:
    async def scenario() -> tuple[int, bool, float]:
        loop = asyncio.get_running_loop()
        race = _Race(loop, lambda: loop.create_future(), lambda: 0.5)
        race.add(loop.create_future())
        admitted = _Admission(loop)
        admitted.hold()  # the limiter queued it
        race.arm(admitted, 0.5)
        assert race.timer is not None
        race.timer.cancel()
        race._on_timer()  # the delay passed while it queued
        copies, rearmed = len(race.copies), race.timer is not None
        admitted.restart()  # admitted now
        assert race.timer is not None
        delay = race.timer.when() - admitted.at
        race.disarm()
        return copies, rearmed, delay

    copies, rearmed, delay = asyncio.run(scenario())
    assert copies == 1 and not rearmed  # no copy of a request that has not been sent
    assert delay == pytest.approx(0.5)  # the delay starts again at its admission


def test_the_executors_word_that_every_row_has_started_reaches_the_hedging_layer() -> None:
    remote = FakeProvider()
    remote.remote = True
    started = [False]
    client: Provider | None = build_client(remote, Limits(), cache=None, winding_down=lambda: started[0])
    while client is not None and not isinstance(client, Hedged):
        client = getattr(client, "inner", None)
    assert isinstance(client, Hedged) and client.winding_down is not None
    assert not client.winding_down()
    started[0] = True
    assert client.winding_down() and client.draining()  # nothing in flight, nothing queued
