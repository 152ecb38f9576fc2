"""The mock OpenAI-compatible server: counters, deterministic faults, endpoints, control, process mode."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from skuforge.errors import TransientError
from skuforge.providers.base import Message, Request
from skuforge.providers.openai import OpenAIProvider
from skuforge.testing.mock_openai import MockConfig, MockServer


class HTTPFault(Exception):
    def __init__(self, code: int, headers: dict[str, str]) -> None:
        super().__init__(code)
        self.code, self.headers = code, headers


def _http(url: str, body: Any = None) -> Any:
    """JSON in, JSON out; an HTTP error status raises HTTPFault (with the response closed)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            raise HTTPFault(exc.code, {k.lower(): v for k, v in exc.headers.items()}) from None


def _request(text: str) -> Request:
    return Request(messages=[Message(role="user", content=text)])


async def _retrying(provider: OpenAIProvider, request: Request, tries: int = 20) -> int:
    """Send until success; returns the number of faults seen."""
    for attempt in range(tries):
        try:
            await provider.generate(request)
            return attempt
        except TransientError:
            continue
    raise AssertionError("never succeeded")


def _run_prompts(server: MockServer, prompts: list[str]) -> list[int]:
    async def go() -> list[int]:
        async with OpenAIProvider("mock-model", base_url=server.url) as provider:
            return [await _retrying(provider, _request(p)) for p in prompts]

    return asyncio.run(go())


def test_counters_track_prompts_successes_and_resends_after_success(mock: MockServer) -> None:
    _run_prompts(mock, ["a b c", "d e f", "a b c"])
    stats = mock.stats.snapshot(detail=True)
    assert stats["requests"] == 3 and stats["unique_prompts"] == 2
    assert stats["resent_after_success"] == 1
    assert sorted(stats["requests_per_prompt"].values()) == [1, 2]
    assert sorted(stats["successes_per_prompt"].values()) == [1, 2]


def test_faults_are_deterministic_per_prompt_and_attempt_so_retries_succeed(mock: MockServer) -> None:
    mock.configure(p500=0.3, pdrop=0.2, pmalformed=0.1)
    prompts = [f"product {i} steel bottle" for i in range(40)]
    first = _run_prompts(mock, prompts)
    faults = dict(mock.stats.faults)
    mock.reset()
    second = _run_prompts(mock, prompts)
    assert first == second and dict(mock.stats.faults) == faults
    assert sum(first) > 10 and set(faults) == {"500", "drop", "malformed"}
    assert mock.stats.resent_after_success == 0


def test_capacity_caps_requests_served_at_once(mock: MockServer) -> None:
    mock.configure(capacity=4, latency_ms=20)

    async def go() -> None:
        async with OpenAIProvider("m", base_url=mock.url) as provider:
            await asyncio.gather(*(provider.generate(_request(f"row {i}")) for i in range(30)))

    asyncio.run(go())
    assert mock.stats.max_concurrent == 4


def test_fixed_output_tokens_sets_usage_and_length(mock: MockServer) -> None:
    mock.configure(output_tokens=64)
    body = {"model": "m", "messages": [{"role": "user", "content": "blue cotton shirt"}]}
    answer = _http(mock.url + "/chat/completions", body)
    assert answer["usage"]["completion_tokens"] == 64
    assert 50 <= math.ceil(len(answer["choices"][0]["message"]["content"]) * 0.27) <= 80


def test_tpm_limit_rejects_a_request_larger_than_what_is_left(mock: MockServer) -> None:
    mock.configure(tpm=1000, output_tokens=600)
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    _http(mock.url + "/chat/completions", body)
    with pytest.raises(HTTPFault) as info:
        _http(mock.url + "/chat/completions", {**body, "messages": [{"role": "user", "content": "y"}]})
    assert info.value.code == 429
    assert info.value.headers["x-ratelimit-remaining-tokens"] == "0"
    assert info.value.headers["x-ratelimit-reset-tokens"].endswith("s")


def test_embeddings_are_deterministic_unit_vectors_closer_for_similar_texts(mock: MockServer) -> None:
    texts = ["stainless steel water bottle", "steel water bottle 750ml", "red silk evening dress"]
    data = _http(mock.url + "/embeddings", {"model": "e", "input": texts})["data"]
    again = _http(mock.url + "/embeddings", {"model": "e", "input": texts[0], "dimensions": 64})["data"]
    vecs = [d["embedding"] for d in data]
    assert all(abs(sum(v * v for v in vec) - 1) < 1e-9 for vec in vecs)
    near = sum(a * b for a, b in zip(vecs[0], vecs[1], strict=True))
    far = sum(a * b for a, b in zip(vecs[0], vecs[2], strict=True))
    assert near > far + 0.2
    assert len(again[0]["embedding"]) == 64
    assert _http(mock.url + "/embeddings", {"model": "e", "input": texts})["data"] == data


def test_moderation_flags_listed_words_only(mock: MockServer) -> None:
    results = _http(mock.url + "/moderations", {"input": ["a lovely lamp", "a weapon for sale", "出售毒品"]})
    flagged = [r["flagged"] for r in results["results"]]
    assert flagged == [False, True, True]
    assert results["results"][1]["categories"]["violence"] is True


def test_models_lists_the_configured_models(mock: MockServer) -> None:
    ids = [m["id"] for m in _http(mock.url + "/models")["data"]]
    assert ids == mock.config.models


def test_control_endpoints_change_config_and_reset_counters(mock: MockServer) -> None:
    _run_prompts(mock, ["one"])
    assert _http(mock.base + "/_stats")["requests"] == 1
    assert _http(mock.base + "/_config", {"p500": 1.0})["p500"] == 1.0
    with pytest.raises(HTTPFault) as info:
        _http(mock.url + "/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "z"}]})
    assert info.value.code == 500
    _http(mock.base + "/_reset", {})
    stats = _http(mock.base + "/_stats")
    assert stats["requests"] == 0 and stats["faults"] == {}
    with pytest.raises(HTTPFault) as bad:
        _http(mock.base + "/_config", {"p500": 3})
    assert bad.value.code == 400


def test_a_request_without_messages_is_a_400(mock: MockServer) -> None:
    with pytest.raises(HTTPFault) as info:
        _http(mock.url + "/chat/completions", {"model": "m"})
    assert info.value.code == 400


def test_a_hung_request_is_released_when_the_server_stops() -> None:
    server = MockServer(MockConfig(phang=1.0)).start()

    async def go() -> None:
        async with OpenAIProvider("m", base_url=server.url) as provider:
            task = asyncio.ensure_future(provider.generate(_request("hang")))
            while server.stats.requests == 0:
                await asyncio.sleep(0.01)
            await asyncio.get_running_loop().run_in_executor(None, server.stop)
            with pytest.raises(TransientError):
                await task

    asyncio.run(go())
    assert server.stats.faults["hang"] == 1


def test_runs_as_a_separate_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "skuforge.testing.mock_openai", "--port", "0", "--output-tokens", "8"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.rsplit(" ", 1)[1].strip()
        answer = _http(
            url + "/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        )
        assert answer["usage"]["completion_tokens"] == 8
        assert _http(url.removesuffix("/v1") + "/_stats")["requests"] == 1
    finally:
        proc.terminate()
        code = proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert code == 0
