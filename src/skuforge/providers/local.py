"""The local model: llama.cpp in-process through llama-cpp-python, offline, on the CPU.

**One model per process.** `shared_model(path)` loads a GGUF file once and hands the same `LoadedModel` to
every caller: each `LocalProvider` (runs, trials, `eval`, `ask`, moderation, the console's "try one
product"), so nothing reloads the 0.5-1 GB file per request, and closing a provider never unloads it.
`unload_models()` frees them all.

**One request at a time.** llama.cpp is not thread-safe, and two requests interleaved on two CPU cores are
slower than the same two in turn; every call runs on the model's single worker thread, in arrival order.
A request waiting for its turn has its timeout clock stopped (`calls.retry.hold_timeout`), so a queue of
rows never times out; only its own generation counts. A cancelled call that has not started is dropped
from the queue; a cancelled stream stops at the next token.

**Threads** are chosen when the model loads, from what the machine offers then (`choose_threads`): every
physical core this process may use on an idle machine, one fewer for each core other processes keep busy
(measured over 0.3 s, `busy_cores`), at least one. `SKUFORGE_THREADS` or `n_threads=` overrides it. OpenMP is
left to wait as libgomp does by default (spin a moment, then sleep) when the model has every core, and set
to wait passively when it has fewer (`wait_policy`): spinning threads decode 2.3 times as fast on an idle
machine and less than half as fast beside a busy process (README "What to expect from the local model").

JSON: a request with `extract_from` and a flat string schema is decoded by `LoadedModel.extract` (every
value null, copied from the product text, or an allowed value); any other `json_schema` is grammar-
constrained by llama-cpp-python, and `json_mode` asks for some JSON object. The packaged Qwen coder models
need one of these to answer with data rather than prose.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from skuforge.errors import ConfigError, PermanentError, require
from skuforge.providers.base import Capabilities, Provider, Request, Result, Usage
from skuforge.providers.extraction import AnswerShape
from skuforge.providers.local_models import KNOWN_MODELS, resolve_model
from skuforge.providers.local_runtime import LoadedModel, iterate

DEFAULT_CTX = 4096
_DONE = object()
_MODELS: dict[Path, LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


# -- threads --------------------------------------------------------------------------------------------


def physical_cores() -> int:
    """Physical cores this process may run on: CPU affinity, hyperthread siblings counted once, and a
    cgroup CPU quota (containers) respected."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
            cores.add((package, core))
        except OSError:
            cores.add(("cpu", str(cpu)))
    count = len(cores) or len(cpus)
    quota = _cgroup_cpus()
    return max(1, min(count, quota) if quota else count)


def _cgroup_cpus() -> int | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, int(int(quota) / int(period)))


def choose_threads(busy: float | None = None, cores: int | None = None) -> int:
    """Threads for llama.cpp: all physical cores on an idle machine, one fewer per core already busy.

    `busy` is how many cores other processes keep busy (measured now by `busy_cores` when not given),
    `cores` the physical cores this process may use. On 2 cores: idle (busy < 0.5) gives 2, busier gives 1.
    How the threads wait between steps follows from the count (`wait_policy`)."""
    cores = physical_cores() if cores is None else cores
    busy = busy_cores() if busy is None else busy
    return max(1, min(cores, cores - round(busy)))


BUSY_WINDOW_S = 0.3


def busy_cores(window: float = BUSY_WINDOW_S) -> float:
    """The cores other processes keep busy now: the machine's busy CPU time over `window` seconds, less
    this process's own, from /proc/stat; the one-minute load average where that cannot be read.

    Not the load average alone: it lags a minute behind. Right after `scripts/setup.sh` compiled and
    installed, an idle 2-core machine still shows a load of 1-2, and the demo ran on one thread (140 s
    instead of 111 s)."""
    try:
        machine, own, started = _machine_busy_s(), _own_cpu_s(), time.monotonic()
        time.sleep(window)
        machine, own = _machine_busy_s() - machine, _own_cpu_s() - own
        return max(0.0, (machine - own) / (time.monotonic() - started))
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0


def _machine_busy_s() -> float:
    """CPU seconds all CPUs spent busy since boot (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def _threads(requested: int | None) -> int:
    if requested:
        return requested
    override = os.environ.get("SKUFORGE_THREADS", "").strip()
    if override:
        try:
            return max(1, int(override))
        except ValueError:
            raise ConfigError(
                f"SKUFORGE_THREADS must be a whole number of threads, not {override!r}.",
                "Unset it to let skuforge choose from the machine's cores and load.",
            ) from None
    return choose_threads()


# -- the one loaded model -------------------------------------------------------------------------------


def shared_model(model: str | Path, *, n_ctx: int = DEFAULT_CTX, n_threads: int | None = None) -> LoadedModel:
    """The process's single loaded copy of a local model: a packaged name (`qwen2.5-0.5b`, assembled and
    verified) or a GGUF path. Loaded on first use with at least `DEFAULT_CTX` tokens of context; a later
    caller asking for a longer context gets it reloaded once, longer."""
    path = resolve_model(str(model)) if not isinstance(model, Path) else model
    with _MODELS_LOCK:
        loaded = _MODELS.get(path)
        if loaded is not None and loaded.llama.n_ctx() >= n_ctx:
            return loaded
        size = max(n_ctx, DEFAULT_CTX, loaded.llama.n_ctx() if loaded else 0)
        fresh = _load(path, size, _threads(n_threads))
        if loaded is not None:
            loaded.executor.submit(loaded.close)  # after whatever it is still running
        _MODELS[path] = fresh
        return fresh


def unload_models() -> None:
    """Free every loaded local model (the next call loads again)."""
    with _MODELS_LOCK:
        models = list(_MODELS.values())
        _MODELS.clear()
    for loaded in models:
        loaded.executor.submit(loaded.close)
        loaded.executor.shutdown(wait=True)


def loaded_models() -> dict[Path, LoadedModel]:
    """The models this process holds now (for `skuforge models` and the console's status)."""
    with _MODELS_LOCK:
        return dict(_MODELS)


def wait_policy(threads: int, cores: int | None = None) -> str | None:
    """How llama.cpp's OpenMP threads wait between steps: libgomp's default (spin a moment, then sleep)
    when the model has every core, passive (sleep at once) when other processes keep some busy. Measured on
    2 cores (bench/bench_local_threads.py): idle, 2 threads decode 39 tok/s spinning and 17 passive; with one
    core kept busy, 2 spinning threads fall to 9 tok/s and passive ones keep 21. None leaves the default."""
    cores = physical_cores() if cores is None else cores
    return None if threads >= cores else "PASSIVE"


def _load(path: Path, n_ctx: int, threads: int) -> LoadedModel:
    policy = wait_policy(threads)
    if policy and "OMP_WAIT_POLICY" not in os.environ:  # read once, when llama.cpp first loads libgomp
        os.environ["OMP_WAIT_POLICY"] = policy
    llama_cpp = require("llama_cpp", "The local model", "local")
    if not path.is_file():
        raise ConfigError(
            f"Model file {path} does not exist.",
            "Run `skuforge models install qwen2.5-0.5b`, or give the path of a GGUF file.",
        )
    started = time.perf_counter()
    try:
        llama = llama_cpp.Llama(
            model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise ConfigError(
            f"llama.cpp could not load {path}: {exc}.",
            "Check that the file is a complete GGUF model; for a packaged model run "
            "`skuforge models install qwen2.5-0.5b` to rebuild and verify it.",
        ) from exc
    return LoadedModel(llama, path, threads, time.perf_counter() - started)


# -- the provider ---------------------------------------------------------------------------------------


class LocalProvider(Provider):
    """A GGUF model run by llama.cpp in this process. Name: `local:<model>`. Instances share the model."""

    def __init__(
        self,
        model_path: Path | str,
        *,
        n_ctx: int = DEFAULT_CTX,
        n_threads: int | None = None,
        model_name: str | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.name = f"local:{model_name or self.model_path}"
        self.capabilities = Capabilities(json_schema=True, json_mode=True, streaming=True, max_context=n_ctx)

    @classmethod
    def from_name(cls, model: str, **options: Any) -> LocalProvider:
        """`qwen2.5-0.5b` (a packaged model, assembled and verified) or a path to a GGUF file."""
        path = resolve_model(model)
        return cls(path, model_name=model if model in KNOWN_MODELS else str(path), **options)

    def model(self) -> LoadedModel:
        """The shared loaded model (loads it on first use, in the calling thread)."""
        return shared_model(self.model_path, n_ctx=self.n_ctx, n_threads=self.n_threads)

    @property
    def load_s(self) -> float | None:
        loaded = loaded_models().get(self.model_path)
        return loaded.load_s if loaded else None

    async def load(self) -> None:
        """Load the model now (otherwise the first call does)."""
        await asyncio.to_thread(self.model)

    # -- the provider surface ---------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Exact, by the model's own tokenizer (loads the model on first use)."""
        if not text:
            return 0
        llama = self.model().llama
        return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    async def generate(self, request: Request) -> Result:
        started = time.perf_counter()
        model = await asyncio.to_thread(self.model)
        shape = None
        if request.extract_from is not None:
            shape = AnswerShape.build(request.json_schema, request.extract_from)
        if shape is not None:
            messages = [m.model_dump() for m in request.messages]
            shared = request.shared_messages
            response = await self._in_turn(
                model, model.extract, messages, shape, request.max_tokens, _tag(request), shared
            )
        else:
            response = await self._in_turn(
                model, model.complete, self._params(request), _tag(request), False, request.shared_messages
            )
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return Result(
            text=choice["message"].get("content") or "",
            usage=Usage(
                input_tokens=usage.get("prompt_tokens", 0),
                output_tokens=usage.get("completion_tokens", 0),
                cached_input_tokens=usage.get("cached_tokens", 0),
            ),
            model=self.name,
            request_id=response.get("id"),
            finish_reason=choice.get("finish_reason"),
            latency_s=time.perf_counter() - started,
        )

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Tokens as llama.cpp produces them, iterated on the worker thread and queued to the event loop."""
        model = await asyncio.to_thread(self.model)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def hand(item: object) -> None:
            with contextlib.suppress(RuntimeError):  # the caller's loop is gone: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, item)

        worker = loop.run_in_executor(model.executor, self._stream_into, model, request, stop, hand)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield str(item)
        finally:
            stop.set()  # the worker stops at the next token
            await asyncio.shield(worker)

    async def aclose(self) -> None:
        """Nothing to free: the model is shared by the process (see `unload_models`)."""

    # -- on the worker thread ---------------------------------------------------------------------------

    async def _in_turn(self, model: LoadedModel, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn` on the model's thread when its turn comes; the timeout clock runs only from then on."""
        from skuforge.calls.retry import hold_timeout, restart_timeout

        loop = asyncio.get_running_loop()
        started = asyncio.Event()

        def job() -> Any:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(started.set)
            with model.lock, self._errors():
                return fn(*args)

        hold_timeout()
        future = loop.run_in_executor(model.executor, job)
        waiting = asyncio.ensure_future(started.wait())
        try:
            await asyncio.wait({future, waiting}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            future.cancel()  # dropped from the queue if it has not started
            raise
        finally:
            waiting.cancel()
        restart_timeout()
        return await future

    def _stream_into(
        self, model: LoadedModel, request: Request, stop: threading.Event, hand: Callable[[object], None]
    ) -> None:
        try:
            with model.lock, self._errors():
                chunks = model.complete(
                    self._params(request), _tag(request), stream=True, shared_messages=request.shared_messages
                )
                with contextlib.closing(chunks):
                    for text in iterate(chunks):
                        if stop.is_set():
                            break  # closing() ends llama's generator here, under the lock
                        hand(text)
        except BaseException as exc:  # handed to the event loop, raised there
            hand(exc)
        hand(_DONE)

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


def _tag(request: Request) -> str:
    return request.tag or ""
