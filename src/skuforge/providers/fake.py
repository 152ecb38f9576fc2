"""The `fake:` provider: deterministic, offline answers for tests, docs and cost projections.

Answers are derived from the prompt, so grounding checks can pass: strings are built from the words of the
product data in the user message (a `brand: Acme` line answers a `brand` field with `Acme`), enums pick a
listed value, numbers come from the data. Lengths vary per request (a hash of the request seeds the choices),
so a projected cost is not a constant times the row count. The mock OpenAI server answers with the same
generator.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from skuforge.errors import TransientError
from skuforge.providers.base import Capabilities, Provider, Request, Result, Usage
from skuforge.providers.tokens import estimate_tokens

_WORD = re.compile(r"[^\W_][\w\-.%/]*[^\W_]|[^\W_]", re.UNICODE)
_CJK_RUN = re.compile(r"^[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+$")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
_PAIR = re.compile(
    r"^[ \t]*[-*•]?[ \t]*\"?([^\W\d][\w .\-]{0,39}?)\"?[ \t]*[:=：][ \t]*\"?(.+?)\"?,?[ \t]*$", re.M
)
_STOP = frozenset(["the", "and", "of", "a", "an", "to", "in", "for", "with", "is", "are", "on", "or", "by"])
_FILLER = ["quality", "design", "everyday", "use", "durable", "product"]
_MAX_DEPTH = 8


def _words(text: str) -> list[str]:
    """Distinct words in order; CJK runs are cut into 2-character pieces (there are no spaces to split on)."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text):
        if _CJK_RUN.match(word) and len(word) > 4:
            for i in range(0, len(word) - 1, 2):
                seen.setdefault(word[i : i + 2], None)
        elif word.lower() not in _STOP and not word.isdigit():
            seen.setdefault(word, None)
    return list(seen) or list(_FILLER)


def _norm(key: str) -> str:
    return re.sub(r"[\s_\-]+", "_", key.strip().lower())


class _Source:
    """What the answer is built from: the words, numbers and `key: value` pairs of the user messages."""

    def __init__(self, text: str) -> None:
        record = _json_object(text)
        if record is not None:  # a JSON data block: its values are the product's words, its keys are not
            self.pairs = {_norm(k): str(v).strip() for k, v in record.items() if v not in (None, "")}
            text = "\n".join(self.pairs.values())
        else:
            self.pairs = {_norm(k): v.strip() for k, v in _PAIR.findall(text) if v.strip()}
        self.words = _words(text)
        self.numbers = [float(n) for n in _NUMBER.findall(text)]


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(text.strip())
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class _Builder:
    """Builds one schema-valid value, walking the schema; every choice comes from a seeded RNG."""

    def __init__(self, root: dict[str, Any], source: _Source, rng: random.Random) -> None:
        self.root, self.src, self.rng = root, source, rng

    def value(self, schema: Any, name: str = "", depth: int = 0) -> Any:
        if not isinstance(schema, dict):
            return self.phrase(2, 6) if schema is not False else None
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return self.rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self.value(self.pick_option(schema[key], depth), name, depth + 1)
        if schema.get("allOf"):
            return self.value(self.merge(schema), name, depth + 1)
        kind = self.kind(schema)
        maker = getattr(self, f"make_{kind}", self.make_string)
        return maker(schema, name, depth)

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#"):
            return schema
        node: Any = self.root
        for part in ref.lstrip("#/").split("/"):
            if part:
                node = node[part.replace("~1", "/").replace("~0", "~")]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return self.resolve({**node, **rest})

    def pick_option(self, options: list[Any], depth: int) -> Any:
        concrete = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        if depth >= _MAX_DEPTH or not concrete:
            return {"type": "null"} if len(concrete) < len(options) else options[0]
        return concrete[0]

    def merge(self, schema: dict[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = self.resolve(part)
            for key, val in part.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **val}
                elif key == "required":
                    merged["required"] = list(dict.fromkeys([*merged.get("required", []), *val]))
                else:
                    merged.setdefault(key, val)
        return merged

    @staticmethod
    def kind(schema: dict[str, Any]) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind:
            return str(kind)
        if "properties" in schema or "additionalProperties" in schema:
            return "object"
        return "array" if "items" in schema else "string"

    def make_object(self, schema: dict[str, Any], name: str, depth: int) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties") or {}
        required = schema.get("required") or []
        names = list(props) if depth < _MAX_DEPTH else [p for p in props if p in required]
        out = {key: self.value(props[key], key, depth + 1) for key in names}
        for key in required:
            out.setdefault(key, self.phrase(1, 4))
        extra = schema.get("additionalProperties")
        if not props and isinstance(extra, dict) and depth < _MAX_DEPTH:
            for word in self.src.words[:2]:
                out[word] = self.value(extra, word, depth + 1)
        return out

    def make_array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        lo, hi = schema.get("minItems", 0), schema.get("maxItems", 10**6)
        n = min(max(self.rng.randint(3, 5) if depth < _MAX_DEPTH else lo, lo), hi)
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        if not prefix and _is_tuple(items):  # a tuple a server took as alternatives: answer each in order
            prefix = items["anyOf"]
            n = len(prefix)
        out: list[Any] = []
        for i in range(n * 3 if schema.get("uniqueItems") else n):
            if len(out) == n:
                break
            sub = prefix[i] if i < len(prefix) else items
            val = self.value(sub, name, depth + 1)
            if not schema.get("uniqueItems") or val not in out:
                out.append(val)
        return out

    def make_string(self, schema: dict[str, Any], name: str, depth: int) -> str:
        fmt = schema.get("format")
        if fmt in ("date", "date-time", "email", "uri", "url", "uuid"):
            return self.formatted(fmt)
        text = self.src.pairs.get(_norm(name)) if name else None
        if text is None or (schema.get("pattern") and not re.search(schema["pattern"], text)):
            text = self.patterned(schema["pattern"]) if schema.get("pattern") else self.phrase(2, 12)
        lo, hi = schema.get("minLength", 0), schema.get("maxLength")
        while len(text) < lo:
            text = f"{text} {self.rng.choice(self.src.words)}"
        if hi is not None and len(text) > hi:
            cut = text[:hi]
            text = cut.rsplit(" ", 1)[0] if " " in cut and len(cut.rsplit(" ", 1)[0]) >= lo else cut
        return text

    def patterned(self, pattern: str) -> str:
        candidates = [*self.src.pairs.values(), *self.src.words]
        return next((c for c in candidates if re.search(pattern, c)), self.phrase(1, 3))

    def formatted(self, fmt: str) -> str:
        r = self.rng
        word = re.sub(r"\W+", "", self.rng.choice(self.src.words).lower()) or "item"
        return {
            "date": f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
            "date-time": f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:00:00Z",
            "email": f"{word}@example.com",
            "uri": f"https://example.com/{word}",
            "url": f"https://example.com/{word}",
            "uuid": str(__import__("uuid").UUID(int=r.getrandbits(128), version=4)),
        }[fmt]

    def phrase(self, lo: int, hi: int) -> str:
        words = self.src.words
        start = self.rng.randrange(len(words))
        count = self.rng.randint(lo, hi)
        picked = [words[(start + i) % len(words)] for i in range(count)]
        return " ".join(picked)

    def make_integer(self, schema: dict[str, Any], name: str, depth: int) -> int:
        return int(self.make_number({**schema, "_int": True}, name, depth))

    def make_number(self, schema: dict[str, Any], name: str, depth: int) -> float:
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        hi = schema.get("maximum", schema.get("exclusiveMaximum"))
        known = self.src.pairs.get(_norm(name)) if name else None
        nums = [float(n) for n in _NUMBER.findall(known or "")] or self.src.numbers
        val = self.rng.choice(nums) if nums else float(self.rng.randint(1, 100))
        step = 1.0 if schema.get("_int") else None
        if isinstance(schema.get("exclusiveMinimum"), (int, float)):
            lo = schema["exclusiveMinimum"] + (step or 1e-6)
        if isinstance(schema.get("exclusiveMaximum"), (int, float)):
            hi = schema["exclusiveMaximum"] - (step or 1e-6)
        val = min(max(val, lo if lo is not None else val), hi if hi is not None else val)
        if step:
            val = float(round(val))
            val = val + 1 if lo is not None and val < lo else val
        if schema.get("multipleOf"):
            val = round(val / schema["multipleOf"]) * schema["multipleOf"]
        return val

    def make_boolean(self, schema: dict[str, Any], name: str, depth: int) -> bool:
        return self.rng.random() < 0.5

    def make_null(self, schema: dict[str, Any], name: str, depth: int) -> None:
        return None


def _seeded(messages: Sequence[tuple[str, str]], extra: Any, seed: int) -> random.Random:
    digest = hashlib.blake2b(orjson.dumps([messages, extra, seed]), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


_DATA_BLOCK = re.compile(r"<(product|data)>(.*?)</\1>", re.S)


def _is_tuple(items: Any) -> bool:
    """`items: {anyOf: [...]}` whose alternatives each pin a property to one value (a converted tuple)."""
    options = items.get("anyOf") if isinstance(items, dict) else None
    return isinstance(options, list) and bool(options) and all(_pins_a_const(o) for o in options)


def _pins_a_const(option: Any) -> bool:
    props = option.get("properties") if isinstance(option, dict) else None
    return isinstance(props, dict) and any(
        isinstance(p, dict) and ("const" in p or len(p.get("enum") or []) == 1) for p in props.values()
    )


def _data_text(messages: Sequence[tuple[str, str]]) -> str:
    """The product data the answer is built from: the last user turn's data block (few-shot turns and the
    preamble around the block are not this product's data), else every user turn."""
    users = [content for role, content in messages if role == "user"]
    if not users:
        return ""
    blocks = _DATA_BLOCK.findall(users[-1])
    return "\n".join(body for _, body in blocks) if blocks else "\n".join(users)


def fake_answer(
    messages: Sequence[tuple[str, str]],
    *,
    schema: dict[str, Any] | None = None,
    json_mode: bool = False,
    seed: int = 0,
    target_tokens: int | None = None,
) -> str:
    """The answer a fake model gives: schema-valid JSON when asked for JSON, else text built from the data.

    `messages` are (role, content) pairs; the words come from the last user turn's data block.
    `target_tokens` fixes the length of a text answer (the mock server's fixed output size); otherwise it
    varies with the request hash.
    """
    rng = _seeded(messages, [schema, json_mode], seed)
    source = _Source(_data_text(messages))
    if schema is not None:
        return orjson.dumps(_Builder(schema, source, rng).value(schema)).decode()
    if json_mode:
        builder = _Builder({}, source, rng)
        body = {"answer": builder.phrase(6, 30), "keywords": [builder.phrase(1, 2) for _ in range(3)]}
        return orjson.dumps(body).decode()
    return _text(source, rng, target_tokens)


def _text(source: _Source, rng: random.Random, target_tokens: int | None) -> str:
    words = source.words
    budget = target_tokens if target_tokens is not None else rng.randint(15, 120)
    out: list[str] = []
    used = 0
    while used < budget:
        word = words[rng.randrange(len(words))]
        out.append(word)
        used += estimate_tokens(word + " ")
    text = " ".join(out)
    return text[:1].upper() + text[1:] + "." if text else "."


def draw(key: str, attempt: int, salt: str) -> float:
    """A uniform draw in [0, 1) fixed by (request, attempt): a retry draws again, a rerun draws the same."""
    digest = hashlib.blake2b(f"{key}|{attempt}|{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class FakeOptions(BaseModel):
    """How the fake model behaves. Rates are per attempt and deterministic per (request, attempt)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    script: list[str | Exception] = Field(default_factory=list, description="answers or faults, in order")
    fail_rate: float = Field(
        default=0.0, ge=0, le=1, description="share of attempts that raise TransientError"
    )
    malformed_rate: float = Field(
        default=0.0, ge=0, le=1, description="share of attempts answering broken JSON"
    )
    latency_s: float = Field(default=0.0, ge=0)
    seed: int = 0
    mode: Literal["generate", "echo"] = "generate"


VARIANTS: dict[str, dict[str, Any]] = {
    "": {},
    "default": {},
    "echo": {"mode": "echo"},
    "flaky": {"fail_rate": 0.1},
    "slow": {"latency_s": 0.2},
}


class FakeProvider(Provider):
    """A deterministic model. `.calls` counts generate() calls and `.requests` keeps every request."""

    capabilities = Capabilities(json_schema=True, json_mode=True, streaming=True)

    def __init__(self, options: FakeOptions | None = None, *, name: str = "fake:", **kwargs: Any) -> None:
        self.options = options or FakeOptions(**kwargs)
        self.name = name
        self.calls = 0
        self.requests: list[Request] = []
        self._attempts: Counter[str] = Counter()

    @classmethod
    def from_variant(cls, variant: str) -> FakeProvider:
        return cls(FakeOptions(**VARIANTS[variant]), name=f"fake:{variant}")

    def __repr__(self) -> str:
        return f"FakeProvider(name={self.name!r}, options={self.options!r})"

    async def generate(self, request: Request) -> Result:
        started = time.perf_counter()
        index = self.calls
        self.calls += 1
        self.requests.append(request)
        if self.options.latency_s:
            await asyncio.sleep(self.options.latency_s)
        text = self._answer(request, index)
        usage = Usage(
            input_tokens=sum(estimate_tokens(m.content) for m in request.messages),
            output_tokens=estimate_tokens(text),
        )
        finish = "stop"
        if request.max_tokens and usage.output_tokens > request.max_tokens and not self._wants_json(request):
            text = text[: int(request.max_tokens / 0.27)]
            usage.output_tokens, finish = estimate_tokens(text), "length"
        key = request.key("fake")
        return Result(
            text=text,
            usage=usage,
            model=self.name,
            request_id=f"fake-{key[:16]}",
            finish_reason=finish,
            cached=False,
            latency_s=time.perf_counter() - started,
        )

    @staticmethod
    def _wants_json(request: Request) -> bool:
        return request.json_schema is not None or request.json_mode

    def _answer(self, request: Request, index: int) -> str:
        opts = self.options
        if index < len(opts.script):
            step = opts.script[index]
            if isinstance(step, BaseException):
                raise step
            return step
        key = request.key(f"fake/{opts.seed}")
        attempt = self._attempts[key]
        self._attempts[key] += 1
        if opts.fail_rate and draw(key, attempt, "fail") < opts.fail_rate:
            raise TransientError(f"{self.name}: injected transient fault (attempt {attempt + 1})")
        pairs = [(m.role, m.content) for m in request.messages]
        if opts.mode == "echo":
            return next((c for r, c in reversed(pairs) if r == "user"), "")
        text = fake_answer(pairs, schema=request.json_schema, json_mode=request.json_mode, seed=opts.seed)
        if opts.malformed_rate and draw(key, attempt, "malformed") < opts.malformed_rate:
            return text[: max(1, len(text) // 2)]
        return text

    async def stream(self, request: Request) -> AsyncIterator[str]:
        result = await self.generate(request)
        pieces = re.findall(r"\S+\s*", result.text) or [result.text]
        for piece in pieces:
            yield piece
