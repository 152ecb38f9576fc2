"""The provider contract: one async method, `generate(request) -> result`.

Rate limits, retries, caching and fallback are wrappers that are themselves providers (see `skuforge.calls`);
the engine only ever sees a `Provider`.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str


NOT_IN_KEY = frozenset({"tag", "sources", "extract_from", "shared_messages"})
"""Request fields left out of keys and signatures: `tag`, `sources` and `shared_messages` describe a
request without changing the answer; `extract_from` is the product texts of the request's own last turn, so
the messages already key it, and `canonical` keys *whether* it is set (requests of one step share a prefix
signature, so they can be packed)."""


class Request(BaseModel):
    """What the model will see. Its canonical JSON is hashed for the item key and the cache key."""

    model_config = ConfigDict(extra="forbid")
    messages: list[Message]
    json_schema: dict[str, Any] | None = Field(None, description="ask for JSON matching this schema")
    json_mode: bool = Field(False, description="ask for a JSON object, schema not enforced by the server")
    max_tokens: int | None = None
    temperature: float = 0.0
    seed: int | None = None
    stop: list[str] | None = None
    extract_from: list[str] | None = Field(
        None,
        description="extraction: the product texts that free-text values must be copied from. With it, a "
        "provider that can constrain decoding makes every string value of a flat `json_schema` object either "
        "`null`, one of the values the schema allows, or a run of whole words written in one of these texts "
        "(the local model does; hosted APIs cannot and ignore it, and the `verbatim` check flags what slips "
        "through). The texts come from the request's last turn, so the messages key them; `canonical` adds "
        "that the constraint is on.",
    )
    tag: str | None = Field(None, description="a label for logs and mock servers; not part of the key")
    shared_messages: int = Field(
        0,
        ge=0,
        description="how many leading messages other requests of the step share (its system prompt and "
        "fixed examples, and a category's examples): a local model keeps its state there the first time it "
        "reads them; not part of the key",
    )
    sources: list[dict[str, Any]] | None = Field(
        None,
        description="knowledge passages and examples the prompt quotes, recorded with the item; not part "
        "of the key (their text is in `messages`, so a changed knowledge base still changes the key)",
    )

    def canonical(self, model: str) -> bytes:
        """Canonical bytes of everything that changes the answer: model, messages and parameters."""
        body = self.model_dump(exclude=set(NOT_IN_KEY), exclude_none=True)
        body["model"] = model
        if self.extract_from is not None:
            body["extract"] = True  # the texts are in the messages; that decoding is held to them is not
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)

    def key(self, model: str) -> str:
        """Hash of the canonical request for `model` (a full `provider:model` name)."""
        return hashlib.sha256(self.canonical(model)).hexdigest()


class Usage(BaseModel):
    """Tokens of one call. `input_tokens` counts every prompt token; `cached_input_tokens` of them were read
    from the provider's prompt cache and `cache_write_tokens` were written to it (Anthropic bills writes)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )


class Result(BaseModel):
    text: str
    usage: Usage = Field(default_factory=Usage)
    model: str = ""
    request_id: str | None = None
    finish_reason: str | None = None
    cached: bool = Field(False, description="served from the response cache, no request sent")
    latency_s: float = 0.0


SchemaDialect = Literal["json-schema", "openai-strict", "gemini", "anthropic"]
"""Which JSON Schema subset a server enforces (see `skuforge.providers.schemas`)."""


class Capabilities(BaseModel):
    """What a provider can do, as data (never guessed from the model's name)."""

    json_schema: bool = False
    json_mode: bool = False
    streaming: bool = False
    batch: bool = False
    max_context: int | None = None
    schema_dialect: SchemaDialect = Field(
        "json-schema", description="the schema subset the server enforces when json_schema is true"
    )
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens", description="the body field for the output limit (OpenAI: max_completion_tokens)"
    )
    temperature: bool = Field(
        True, description="the model takes a temperature; false: left at its default (reasoning models)"
    )


class Provider(ABC):
    """A model behind one async method. `name` is the full `provider:model` string."""

    name: str = ""
    capabilities: Capabilities = Capabilities()
    remote: bool = False
    """Requests travel to a server: a stuck one is worth a second copy (see `calls.hedge`). An in-process
    model (local, fake) is not: a copy would only queue behind the first."""

    @abstractmethod
    async def generate(self, request: Request) -> Result:
        """Send one request. Raise TransientError / RateLimitError / PermanentError on faults."""

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Yield the answer's text as it comes; providers without streaming yield it whole."""
        result = await self.generate(request)
        yield result.text

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` for this model: exact where the provider has a tokenizer, else an estimate."""
        from skuforge.providers.tokens import estimate_tokens

        return estimate_tokens(text)

    async def preflight(self) -> list[str]:
        """Check cheaply, before any item is sent, that the model, key and base URL work.

        Raises ProviderUnavailable (unreachable, key rejected) or ConfigError (no such model); returns
        notes worth showing. Providers without a server (local, fake) have nothing to check."""
        return []

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing
        """Release connections, sessions or model memory."""

    async def __aenter__(self) -> Provider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Wrapper(Provider):
    """A provider that wraps another: limits, retries, cache, fallback."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.capabilities = inner.capabilities

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    async def preflight(self) -> list[str]:
        return await self.inner.preflight()

    async def stream(self, request: Request) -> AsyncIterator[str]:
        async for piece in self.inner.stream(request):
            yield piece

    async def aclose(self) -> None:
        await self.inner.aclose()
