"""Test doubles for the call wrappers: a scripted provider and an event loop with a virtual clock.

The virtual clock makes time-based behaviour (rate buckets, cool-downs, timeouts, backoff) exact and instant:
whenever the loop would sleep until its next timer, the clock jumps there instead. Nothing real is mocked —
the wrappers run their real code on a real asyncio loop whose `time()` is virtual.
"""

from __future__ import annotations

import asyncio
import selectors
from collections import deque
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from skuforge.providers.base import Message, Provider, Request, Result, Usage

T = TypeVar("T")
HANG = object()
"""A script step that never answers (until cancelled)."""


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is not None and timeout > 0:
            self.now += timeout
            timeout = 0
        return super().select(timeout)


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer instead of waiting for it."""

    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on a fresh virtual-clock loop, then close the loop cleanly."""
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def now() -> float:
    return asyncio.get_running_loop().time()


class Scripted(Provider):
    """Answers each call with the next step of a script: a text, an exception to raise, or HANG.

    Records every request, the loop time each call started, and the most calls ever in flight at once.
    """

    def __init__(
        self, steps: Iterable[object] = (), *, name: str = "scripted:test", delay_s: float = 0.0
    ) -> None:
        self.name = name
        self.steps: deque[object] = deque(steps)
        self.delay_s = delay_s
        self.calls: list[Request] = []
        self.started: list[float] = []
        self.active = 0
        self.max_active = 0

    async def generate(self, request: Request) -> Result:
        self.calls.append(request)
        self.started.append(now())
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            step = self.steps.popleft() if self.steps else "ok"
            if isinstance(step, BaseException):
                raise step
            if step is HANG:
                await asyncio.Event().wait()
            return Result(text=str(step), usage=Usage(input_tokens=10, output_tokens=5), model=self.name)
        finally:
            self.active -= 1

    def count_tokens(self, text: str) -> int:
        """One token per word, so tests can compute costs exactly."""
        return len(text.split())


def ask(text: str = "one two three", **params: Any) -> Request:
    return Request(messages=[Message(role="user", content=text)], **params)
