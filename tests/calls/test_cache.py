"""The response cache: hits send nothing, answers survive reopening, keys hash what changes the answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from calls_fakes import Scripted, ask

from skuforge.calls import Cached, CallStats, ResponseCache
from skuforge.errors import ConfigError, PermanentError
from skuforge.providers.base import Message, Request, Result, Usage


def test_a_cache_hit_sends_nothing_and_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    provider, stats = Scripted(["first answer"]), CallStats()

    async def first_run() -> tuple[Result, Result]:
        client = Cached(provider, ResponseCache(path), stats=stats)
        async with client:
            one = await client.generate(ask("red cotton shirt"))
            two = await client.generate(ask("red cotton shirt"))
        client.cache.close()
        return one, two

    one, two = asyncio.run(first_run())
    assert len(provider.calls) == 1
    assert (one.cached, two.cached) == (False, True)
    assert two.text == "first answer" and two.usage == Usage(input_tokens=10, output_tokens=5)
    assert stats.cache_hits == 1

    again = Scripted(["should not be asked"])
    with ResponseCache(path) as cache:
        result = asyncio.run(Cached(again, cache).generate(ask("red cotton shirt")))
    assert again.calls == []
    assert result.cached and result.text == "first answer"


def test_the_default_cache_lives_in_skuforge_home(_isolated_home: Path) -> None:
    with ResponseCache() as cache:
        assert cache.path == _isolated_home / "cache.db"


def test_a_failed_request_is_not_cached(tmp_path: Path) -> None:
    provider = Scripted([PermanentError("400 bad request"), "second try"])
    with ResponseCache(tmp_path / "cache.db") as cache:
        client = Cached(provider, cache)
        with pytest.raises(PermanentError):
            asyncio.run(client.generate(ask()))
        assert asyncio.run(client.generate(ask())).text == "second try"
    assert len(provider.calls) == 2


def test_the_cache_key_follows_the_model_the_messages_and_the_parameters_but_not_the_tag() -> None:
    base = ask("blue jeans", temperature=0.0, max_tokens=50)
    key = base.key("openai:gpt-4o-mini")
    assert key == ask("blue jeans", temperature=0.0, max_tokens=50, tag="trial 3").key("openai:gpt-4o-mini")
    changed = [
        base.key("openai:gpt-4o"),
        ask("black jeans", temperature=0.0, max_tokens=50).key("openai:gpt-4o-mini"),
        ask("blue jeans", temperature=0.7, max_tokens=50).key("openai:gpt-4o-mini"),
        ask("blue jeans", temperature=0.0, max_tokens=51).key("openai:gpt-4o-mini"),
        ask("blue jeans", temperature=0.0, max_tokens=50, seed=1).key("openai:gpt-4o-mini"),
        ask("blue jeans", temperature=0.0, max_tokens=50, json_mode=True).key("openai:gpt-4o-mini"),
        Request(messages=[Message(role="system", content="blue jeans")], temperature=0.0, max_tokens=50).key(
            "openai:gpt-4o-mini"
        ),
    ]
    assert key not in changed
    assert len(set(changed)) == len(changed)


def test_a_different_model_misses_the_cache(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "cache.db") as cache:
        asyncio.run(Cached(Scripted(name="fake:a"), cache).generate(ask()))
        other = Scripted(name="fake:b")
        asyncio.run(Cached(other, cache).generate(ask()))
    assert len(other.calls) == 1


def test_buffered_answers_are_served_at_once_and_reach_disk_on_flush(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    writer = ResponseCache(path, flush_every=1000)
    writer.put("k1", Result(text="buffered"))
    reader = ResponseCache(path)
    assert writer.get("k1") is not None
    assert reader.get("k1") is None  # the documented loss window: not on disk until flushed
    writer.flush()
    hit = reader.get("k1")
    assert hit is not None and hit.text == "buffered" and hit.cached
    writer.close()
    reader.close()


def test_a_full_buffer_is_written_without_waiting(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    with ResponseCache(path, flush_every=3) as writer, ResponseCache(path) as reader:
        for i in range(3):
            writer.put(f"k{i}", Result(text=str(i)))
        assert len(reader) == 3


def test_the_buffer_is_flushed_by_a_timer_on_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"

    async def main() -> None:
        with ResponseCache(path, flush_after_s=0.01) as writer, ResponseCache(path) as reader:
            writer.put("k", Result(text="soon"))
            await asyncio.sleep(0.05)  # the flush timer (due earlier) runs before this sleep ends
            assert reader.get("k") is not None

    asyncio.run(main())


def test_a_corrupt_cache_file_says_to_delete_it(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError) as caught:
        ResponseCache(path)
    assert str(path) in caught.value.message
    assert caught.value.hint is not None and "Delete the file" in caught.value.hint


def test_clear_forgets_everything(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "cache.db") as cache:
        cache.put("a", Result(text="a"))
        cache.flush()
        cache.put("b", Result(text="b"))
        assert len(cache) == 2
        assert cache.clear() == 1
        assert len(cache) == 0 and cache.get("a") is None and cache.get("b") is None


def test_identical_requests_in_flight_together_are_sent_once(tmp_path: Path) -> None:
    provider, stats = Scripted(["shared answer"], delay_s=0.01), CallStats()

    async def main() -> list[Result]:
        with ResponseCache(tmp_path / "cache.db") as cache:
            client = Cached(provider, cache, stats=stats)
            return await asyncio.gather(*(client.generate(ask("same product")) for _ in range(5)))

    results = asyncio.run(main())
    assert len(provider.calls) == 1
    assert [r.text for r in results] == ["shared answer"] * 5
    assert [r.cached for r in results] == [False, True, True, True, True]
    assert stats.cache_hits == 4


def test_waiters_on_a_failed_request_get_its_error_and_a_cancelled_sender_hands_over(tmp_path: Path) -> None:
    provider = Scripted([PermanentError("400 bad request")], delay_s=0.01)

    async def main() -> tuple[list[object], str]:
        with ResponseCache(tmp_path / "cache.db") as cache:
            client = Cached(provider, cache)
            failed = await asyncio.gather(*(client.generate(ask()) for _ in range(3)), return_exceptions=True)
            first = asyncio.ensure_future(client.generate(ask("other")))
            await asyncio.sleep(0)
            second = asyncio.ensure_future(client.generate(ask("other")))
            await asyncio.sleep(0)
            first.cancel()
            return failed, (await second).text

    failed, handed_over = asyncio.run(main())
    assert all(isinstance(e, PermanentError) for e in failed)
    assert handed_over == "ok"
    assert len(provider.calls) == 3  # the failed one once, then the cancelled sender and its successor
