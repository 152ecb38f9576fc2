"""The mock server's state: counters, the RPM/TPM limiter, and the deterministic embedding and moderation.

Kept apart from the HTTP handlers so the counters can be read from the test thread while the server's own
thread updates them (every update and snapshot holds one lock; both are a few dict operations).
"""

from __future__ import annotations

import math
import re
import threading
import time
import zlib
from collections import Counter
from typing import Any


class MockStats:
    """What the server saw. `resent_after_success` counts requests for a prompt that had already succeeded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.per_prompt: Counter[str] = Counter()
            self.successes: Counter[str] = Counter()
            self.resent_after_success = 0
            self.faults: Counter[str] = Counter()
            self.endpoints: Counter[str] = Counter()
            self.in_flight = 0
            self.max_concurrent = 0
            self.billed = Counter[str]()  # tokens of every request the server processed: what a vendor bills

    def received(self, endpoint: str, prompt: str | None) -> int:
        """Count one request; returns its attempt number for that prompt (0 for the first)."""
        with self._lock:
            self.requests += 1
            self.endpoints[endpoint] += 1
            if prompt is None:
                return 0
            attempt = self.per_prompt[prompt]
            self.per_prompt[prompt] = attempt + 1
            if self.successes[prompt]:
                self.resent_after_success += 1
            return attempt

    def succeeded(self, prompt: str) -> None:
        with self._lock:
            self.successes[prompt] += 1

    def bill(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> None:
        """Count what a processed request costs, whether or not its client is still there to read it."""
        with self._lock:
            self.billed.update(input=input_tokens, output=output_tokens, cached=cached_tokens)

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def snapshot(self, detail: bool = False) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {
                "requests": self.requests,
                "unique_prompts": len(self.per_prompt),
                "successes": sum(self.successes.values()),
                "max_requests_per_prompt": max(self.per_prompt.values(), default=0),
                "resent_after_success": self.resent_after_success,
                "faults": dict(self.faults),
                "endpoints": dict(self.endpoints),
                "in_flight": self.in_flight,
                "max_concurrent": self.max_concurrent,
                "billed": dict(self.billed),
            }
            if detail:
                out["requests_per_prompt"] = dict(self.per_prompt)
                out["successes_per_prompt"] = dict(self.successes)
            return out


class PrefixCache:
    """A vendor's prompt cache as the mock plays it: a prefix seen before for the same model is read from the
    cache; the first sight writes it. Prefixes shorter than the server's minimum are never cached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str]] = set()

    def lookup(self, model: str, prefix: str, tokens: int, min_tokens: int = 0) -> tuple[int, int]:
        """(read, written): tokens read from the cache and written to it for a request with this prefix."""
        if not prefix or tokens < max(1, min_tokens):
            return 0, 0
        with self._lock:
            if (model, prefix) in self._seen:
                return tokens, 0
            self._seen.add((model, prefix))
            return 0, tokens

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()


def fmt_duration(seconds: float) -> str:
    """Seconds in OpenAI's reset format: '20ms', '1.5s', '6m0s'."""
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s"


class RateLimiter:
    """Token buckets for requests and tokens per minute, refilled continuously (like the hosted APIs)."""

    def __init__(self, rpm: float | None, tpm: float | None, burst_s: float | None = None) -> None:
        self.rpm, self.tpm = rpm, tpm
        # bucket size: a full minute's worth by default; `burst_s` seconds' worth for a stricter server
        self.burst = (burst_s / 60.0) if burst_s else 1.0
        self.requests = float(rpm or 0) * self.burst
        self.tokens = float(tpm or 0) * self.burst
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        elapsed, self.stamp = now - self.stamp, now
        if self.rpm:
            self.requests = min(self.rpm * self.burst, self.requests + elapsed * self.rpm / 60)
        if self.tpm:
            self.tokens = min(self.tpm * self.burst, self.tokens + elapsed * self.tpm / 60)

    def admit(self, tokens: int) -> tuple[float, dict[str, str]]:
        """(seconds to wait, headers): 0 when admitted (and the buckets are charged)."""
        self._refill()
        wait_r = (1 - self.requests) * 60 / self.rpm if self.rpm and self.requests < 1 else 0.0
        cost = min(tokens, self.tpm * self.burst) if self.tpm else 0
        wait_t = (cost - self.tokens) * 60 / self.tpm if self.tpm and self.tokens < cost else 0.0
        if not wait_r and not wait_t:
            self.requests -= 1 if self.rpm else 0
            self.tokens -= cost
        return max(wait_r, wait_t), self.headers(wait_r, wait_t)

    def headers(self, wait_r: float, wait_t: float) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.rpm:
            full_r = (self.rpm - self.requests) * 60 / self.rpm
            out["x-ratelimit-limit-requests"] = str(int(self.rpm))
            out["x-ratelimit-remaining-requests"] = str(max(0, int(self.requests)))
            out["x-ratelimit-reset-requests"] = fmt_duration(wait_r or full_r)
        if self.tpm:
            full_t = (self.tpm - self.tokens) * 60 / self.tpm
            out["x-ratelimit-limit-tokens"] = str(int(self.tpm))
            out["x-ratelimit-remaining-tokens"] = str(max(0, int(self.tokens)) if not wait_t else 0)
            out["x-ratelimit-reset-tokens"] = fmt_duration(wait_t or full_t)
        return out


_TOKEN = re.compile(r"\w+", re.UNICODE)


def embed(text: str, dim: int) -> list[float]:
    """A deterministic unit vector from hashed words and character trigrams: similar texts land close."""
    vec = [0.0] * dim
    lowered = text.lower()
    features = _TOKEN.findall(lowered)
    features += [lowered[i : i + 3] for i in range(max(0, len(lowered) - 2))]
    for feature in features or [""]:
        h = zlib.crc32(feature.encode())
        vec[h % dim] += 1.0 if (h >> 16) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def moderate(text: str, words: dict[str, str]) -> dict[str, Any]:
    """One moderation result: flagged when the text contains a listed word (category from the list)."""
    lowered = text.lower()
    hits = {category for word, category in words.items() if word.lower() in lowered}
    categories = {c: c in hits for c in sorted(set(words.values()))}
    scores = {c: 0.99 if hit else 0.001 for c, hit in categories.items()}
    return {"flagged": bool(hits), "categories": categories, "category_scores": scores}
