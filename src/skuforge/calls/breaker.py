"""A circuit breaker: stop sending when every request would fail the same way.

Two faults say that about a provider, not about one request:

- `max_connect_failures` connection failures in a row (`ConnectError`: refused, unknown host, connect
  timeout): the base URL is wrong or the server is down. One success in between resets the count, so a
  flaky network that drops a request now and then never trips it; cut bodies, 5xx and 429 do not count.
- an authentication error (HTTP 401 or 403): the key is wrong; no retry would change that.

Either opens the circuit for good: the request that tripped it, and every request after it, raises
`ProviderUnavailable` at once, without reaching the server. The engine then stops sending, records nothing
for those items and pauses the job with the message, so nothing is marked failed and nothing was spent on
the failed attempts; once the cause is fixed, `skuforge resume JOB` carries on.

It sits inside the retry layer (`Retrying(Breaker(Limited(provider)))`): it sees every attempt, and the
`ProviderUnavailable` it raises is not retried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from skuforge.calls.stats import CallStats
from skuforge.errors import PermanentError, ProviderUnavailable
from skuforge.providers.base import Provider, Request, Result, Wrapper
from skuforge.providers.http import ConnectError

RESUME = "fix it and resume with `skuforge resume JOB`"


class Breaker(Wrapper):
    """Open after `max_connect_failures` consecutive connection failures or one 401/403; then refuse all."""

    def __init__(
        self, inner: Provider, *, max_connect_failures: int = 5, stats: CallStats | None = None
    ) -> None:
        if max_connect_failures < 1:
            raise ValueError(f"max_connect_failures must be at least 1, got {max_connect_failures}")
        super().__init__(inner)
        self.max_connect_failures = max_connect_failures
        self.stats = stats or CallStats()
        self.failures = 0
        self.opened: ProviderUnavailable | None = None

    @property
    def is_open(self) -> bool:
        return self.opened is not None

    async def generate(self, request: Request) -> Result:
        if self.opened is not None:
            raise self.opened
        try:
            result = await self.inner.generate(request)
        except ConnectError as exc:
            self.failures += 1
            if self.failures >= self.max_connect_failures:
                raise self._open(unreachable(exc, self.failures)) from exc
            raise
        except PermanentError as exc:
            if exc.status in (401, 403):
                raise self._open(rejected(exc)) from exc
            raise
        self.failures = 0
        return result

    async def stream(self, request: Request) -> AsyncIterator[str]:
        if self.opened is not None:
            raise self.opened
        async for piece in self.inner.stream(request):
            yield piece

    def _open(self, error: ProviderUnavailable) -> ProviderUnavailable:
        if self.opened is None:
            self.opened = error
            self.stats.unavailable += 1
        return self.opened


def unreachable(exc: ConnectError, failures: int) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"cannot reach {exc.url}: {exc.reason} ({failures} connection attempts in a row failed); "
        f"nothing was spent for it; {RESUME}",
        "Check the base URL (e.g. $OPENAI_BASE_URL) and that the server is running. The job is paused: "
        "items already done are kept, and the ones not done are sent when it resumes.",
    )


def rejected(exc: PermanentError) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"the server rejected the API key (HTTP {exc.status}): {exc.message}; "
        f"nothing was spent for it; {RESUME}",
        exc.hint or "Check the API key. The job is paused: nothing is lost.",
        status=exc.status,
    )
