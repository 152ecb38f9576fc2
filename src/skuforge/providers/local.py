"""The local model: llama.cpp in-process through llama-cpp-python, offline, on the CPU.

One `LocalProvider` owns one model, loaded lazily on first use. llama.cpp is not thread-safe, so every call
runs on the provider's own single worker thread (a one-thread executor, plus a lock in case two event loops
share the provider); the event loop is never blocked. A cancelled call that has not started yet is dropped
from the worker's queue; a cancelled stream stops at the next token; a `generate` already running finishes
its answer (bounded by `max_tokens`: llama-cpp-python offers no way to interrupt a chat completion from
outside that does not cost a Python callback over the whole vocabulary per token).

JSON: with `request.json_schema` the answer is grammar-constrained to the schema; with `json_mode` to some
JSON object. The packaged Qwen coder models need one of the two to answer with data rather than prose.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from skuforge.errors import ConfigError, PermanentError, require
from skuforge.providers.base import Capabilities, Provider, Request, Result, Usage
from skuforge.providers.local_models import KNOWN_MODELS, resolve_model

_DONE = object()


def default_threads() -> int:
    """Half the CPUs this process may use (llama.cpp's own default), at least one.

    Measured on 2 shared cores under load: 1 thread gave 13.6 tok/s, 2 threads 1.8 tok/s — llama.cpp's worker
    threads spin while waiting for each other, so claiming every core on a busy machine is ruinous.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 2
    return max(1, usable // 2)


class LocalProvider(Provider):
    """A GGUF model run by llama.cpp in this process. Name: `local:<model>`."""

    def __init__(
        self,
        model_path: Path | str,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        model_name: str | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        self.name = f"local:{model_name or self.model_path}"
        self.capabilities = Capabilities(json_schema=True, json_mode=True, streaming=True, max_context=n_ctx)
        self._llama: Any = None
        self._load_lock = threading.Lock()
        self._call_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skuforge-llama")
        self.load_s: float | None = None

    @classmethod
    def from_name(cls, model: str, **options: Any) -> LocalProvider:
        """`qwen2.5-0.5b` (a packaged model, assembled and verified) or a path to a GGUF file."""
        path = resolve_model(model)
        return cls(path, model_name=model if model in KNOWN_MODELS else str(path), **options)

    # -- loading ----------------------------------------------------------------------------------------

    def _model(self) -> Any:
        """The llama.cpp model, loaded once (thread-safe)."""
        if self._llama is None:
            with self._load_lock:
                if self._llama is None:
                    self._llama = self._load()
        return self._llama

    def _load(self) -> Any:
        llama_cpp = require("llama_cpp", "The local model", "local")
        if not self.model_path.is_file():
            raise ConfigError(
                f"Model file {self.model_path} does not exist.",
                "Run `skuforge models install qwen2.5-0.5b`, or give the path of a GGUF file.",
            )
        started = time.perf_counter()
        try:
            llama = llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ConfigError(
                f"llama.cpp could not load {self.model_path}: {exc}.",
                "Check that the file is a complete GGUF model; for a packaged model run "
                "`skuforge models install qwen2.5-0.5b` to rebuild and verify it.",
            ) from exc
        self.load_s = time.perf_counter() - started
        return llama

    async def load(self) -> None:
        """Load the model now (otherwise the first call does)."""
        await self._in_worker(self._model)

    # -- the provider surface ---------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Exact, by the model's own tokenizer (loads the model on first use)."""
        if not text:
            return 0
        return len(self._model().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    async def generate(self, request: Request) -> Result:
        started = time.perf_counter()
        response = await self._in_worker(self._complete, request)
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return Result(
            text=choice["message"].get("content") or "",
            usage=Usage(
                input_tokens=usage.get("prompt_tokens", 0), output_tokens=usage.get("completion_tokens", 0)
            ),
            model=self.name,
            request_id=response.get("id"),
            finish_reason=choice.get("finish_reason"),
            latency_s=time.perf_counter() - started,
        )

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Tokens as llama.cpp produces them, iterated on the worker thread and queued to the event loop."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def hand(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        worker = loop.run_in_executor(self._executor, self._stream_into, request, stop, hand)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield str(item)
        finally:
            stop.set()  # the worker stops at the next token
            await asyncio.shield(worker)

    async def aclose(self) -> None:
        """Free the model's memory and the worker thread."""
        llama, self._llama = self._llama, None
        if llama is not None:
            await self._in_worker(llama.close)
        self._executor.shutdown(wait=False)

    # -- on the worker thread ---------------------------------------------------------------------------

    async def _in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _complete(self, request: Request) -> dict[str, Any]:
        llama = self._model()
        with self._call_lock, self._errors():
            return llama.create_chat_completion(**self._params(request))

    def _stream_into(self, request: Request, stop: threading.Event, hand: Callable[[object], None]) -> None:
        try:
            llama = self._model()
            with self._call_lock, self._errors(), contextlib.closing(self._chunks(llama, request)) as chunks:
                for chunk in chunks:
                    if stop.is_set():
                        break  # closing() ends llama's generator here, under the lock
                    hand(chunk)
        except BaseException as exc:  # handed to the event loop, raised there
            hand(exc)
        hand(_DONE)

    def _chunks(self, llama: Any, request: Request) -> Generator[str, None, None]:
        pieces = llama.create_chat_completion(stream=True, **self._params(request))
        try:
            for chunk in pieces:
                text = chunk["choices"][0]["delta"].get("content")
                if text:
                    yield text
        finally:
            pieces.close()

    def _params(self, request: Request) -> dict[str, Any]:
        """llama-cpp-python's arguments for `request`."""
        params: dict[str, Any] = {
            "messages": [m.model_dump() for m in request.messages],
            "temperature": request.temperature,
            "seed": request.seed,
            "max_tokens": request.max_tokens,
            "stop": request.stop or [],
        }
        if request.json_schema is not None:
            params["response_format"] = {"type": "json_object", "schema": request.json_schema}
        elif request.json_mode:
            params["response_format"] = {"type": "json_object"}
        return params

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """llama.cpp's exceptions as skuforge errors that say what to do (retrying never helps here)."""
        try:
            yield
        except ValueError as exc:
            if "context window" in str(exc) or "exceed" in str(exc):
                raise PermanentError(
                    f"The prompt is too long for {self.name}: {exc}",
                    f"Shorten the product data or the recipe, or raise n_ctx (now {self.n_ctx}).",
                ) from exc
            raise PermanentError(f"{self.name} rejected the request: {exc}") from exc
        except RuntimeError as exc:
            raise PermanentError(
                f"{self.name} failed while generating: {exc}",
                "Retry with a shorter prompt; if it persists, rebuild the model file with "
                "`skuforge models install NAME --force`.",
            ) from exc
