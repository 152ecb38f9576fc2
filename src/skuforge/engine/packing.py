"""`pack: K` in a recipe step: K products in one request, split back per product.

Extraction-style steps spend most of each request on the same instruction, requirements, output format and
examples; packing sends that prefix once for K products. A packed request keeps the single request's system
turn (plus a sentence on the packed answer), turns each example into a pack of one, and lists the products
as `<product id="1">...</product>` blocks. Its schema asks for `{"items": [{"id": "1", <fields>}, ...]}`,
one entry per product in order (`prefixItems` with a constant id, so grammar-constrained models cannot skip
or repeat one).

Only requests with the same prefix (system turn, examples, schema) share a pack, so a per-row instruction
(e.g. the attributes a row lacks) packs rows that lack the same ones. Each entry is validated against its own
product's schema; a product whose entry is missing or invalid, or whose pack failed as a whole, falls back to
a single request (the caller's normal path). Usage is split back: input tokens evenly, output tokens by the
length of each product's entry, so per-item costs still add up to what the provider billed.

The item key stays the hash of the single request, so resume and incremental runs are unchanged by packing.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from skuforge.errors import OutputError, ProviderError
from skuforge.providers.base import NOT_IN_KEY, Message, Provider, Request, Usage
from skuforge.recipes.answer import extract_json
from skuforge.recipes.prompt import DATA_PREAMBLE

OPEN, CLOSE = "<product>\n", "\n</product>"
LINGER_S = 0.02
"""How long a part-filled pack waits for more products before it is sent as it is."""

PACK_NOTE = (
    "Several products follow, each inside its own product tags with an id. Answer one JSON object "
    '{"items": [...]} with one entry per product, in the order given: its "id" and the keys described '
    "above for that product."
)


@dataclass(slots=True)
class Share:
    """One product's part of a packed answer: its validated output (None: send it alone), its usage."""

    output: Any
    usage: Usage
    requests: int
    size: int
    cached: bool = False


def prefix_signature(request: Request) -> str:
    """Hash of everything but the product turn: requests with equal signatures can share a pack."""
    body = request.model_dump(exclude=set(NOT_IN_KEY), exclude_none=True)
    body["messages"] = body["messages"][:-1]
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def split_product_turn(content: str) -> tuple[str, str]:
    """(data block, trailing ask) of a single request's product turn (see recipes.prompt.user_text)."""
    start, end = content.find(OPEN), content.rfind(CLOSE)
    if start < 0 or end < start:
        raise ValueError("the product turn has no <product> block")
    return content[start + len(OPEN) : end], content[end + len(CLOSE) :].strip()


def entry_schema(schema: dict[str, Any], item_id: str) -> dict[str, Any]:
    """The single-product schema with a constant `id` added in front."""
    props = {"id": {"const": item_id}, **(schema.get("properties") or {})}
    required = ["id", *[r for r in schema.get("required", []) if r != "id"]]
    return {**schema, "type": "object", "properties": props, "required": required}


def packed_schema(schema: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    entries = [entry_schema(schema, i) for i in ids]
    items = {"type": "array", "prefixItems": entries, "minItems": len(ids), "maxItems": len(ids)}
    return {
        "type": "object",
        "properties": {"items": items},
        "required": ["items"],
        "additionalProperties": False,
    }


def _example_turns(messages: list[Message]) -> list[Message]:
    """Few-shot turns rewritten as packs of one, so the examples show the packed answer's shape."""
    out = []
    for message in messages:
        content = message.content
        if message.role == "user" and OPEN in content:
            content = content.replace(OPEN, '<product id="1">\n', 1)
        elif message.role == "assistant":
            try:
                answer = extract_json(content)
            except ValueError:
                answer = None
            if isinstance(answer, dict):
                content = orjson.dumps({"items": [{"id": "1", **answer}]}).decode()
        out.append(Message(role=message.role, content=content))
    return out


def pack_request(requests: list[Request], ids: list[str]) -> Request:
    """One request for several single requests that share a prefix (see `prefix_signature`)."""
    first = requests[0]
    system, *examples = first.messages[:-1]
    blocks, asks = [], set()
    for request, item_id in zip(requests, ids, strict=True):
        data, ask = split_product_turn(request.messages[-1].content)
        blocks.append(f'<product id="{item_id}">\n{data}\n</product>')
        asks.add(ask)
    ask = asks.pop() if len(asks) == 1 else ""
    turn = "\n".join([DATA_PREAMBLE, *blocks, *([ask] if ask else [])])
    schema = first.json_schema or {"type": "object"}
    return first.model_copy(
        update={
            "messages": [
                Message(role="system", content=f"{system.content}\n\n{PACK_NOTE}"),
                *_example_turns(examples),
                Message(role="user", content=turn),
            ],
            "json_schema": packed_schema(schema, ids),
            "max_tokens": first.max_tokens * len(ids) + 8 * len(ids) if first.max_tokens else None,
            "tag": f"{first.tag or 'pack'}.pack{len(ids)}",
        }
    )


def split_answer(text: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The entries of a packed answer by id (without the id); unparsable answers give none."""
    try:
        value = extract_json(text)
    except ValueError:
        return {}
    entries = value.get("items") if isinstance(value, dict) else None
    out: dict[str, dict[str, Any]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and str(entry.get("id")) in ids and str(entry["id"]) not in out:
            out[str(entry["id"])] = {k: v for k, v in entry.items() if k != "id"}
    return out


def split_usage(usage: Usage, weights: list[int]) -> list[Usage]:
    """Input (and cached) tokens evenly, output tokens by weight; the parts sum to `usage` exactly."""
    n = len(weights)
    total = sum(weights) or n
    weights = weights if sum(weights) else [1] * n
    parts = []
    for i, weight in enumerate(weights):
        parts.append(
            Usage(
                input_tokens=usage.input_tokens // n + (i < usage.input_tokens % n),
                cached_input_tokens=usage.cached_input_tokens // n + (i < usage.cached_input_tokens % n),
                output_tokens=usage.output_tokens * weight // total,
            )
        )
    parts[0].output_tokens += usage.output_tokens - sum(p.output_tokens for p in parts)
    return parts


@dataclass
class _Pending:
    request: Request
    parse: Any
    future: asyncio.Future[Share]


@dataclass
class Packer:
    """Collects single requests of one step and sends them K at a time.

    `submit` returns the product's Share; a Share without output means the caller sends the single request
    itself (adding the share's usage, which the provider billed for the failed pack, to that item).
    """

    client: Provider
    size: int
    linger_s: float = LINGER_S
    sent: int = 0
    _groups: dict[str, list[_Pending]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def submit(self, request: Request, parse: Any) -> Share:
        """Queue `request`; `parse(text)` validates this product's entry against its own schema."""
        loop = asyncio.get_running_loop()
        pending = _Pending(request, parse, loop.create_future())
        signature = prefix_signature(request)
        group = self._groups.setdefault(signature, [])
        group.append(pending)
        if len(group) >= self.size:
            self._launch(signature)
        elif len(group) == 1:
            loop.call_later(self.linger_s, self._launch, signature, group)
        return await pending.future

    def _launch(self, signature: str, expected: list[_Pending] | None = None) -> None:
        group = self._groups.get(signature)
        if not group or (expected is not None and group is not expected):
            return  # already sent when it filled up
        del self._groups[signature]
        task = asyncio.get_running_loop().create_task(self._send(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, group: list[_Pending]) -> None:
        if len(group) == 1:
            group[0].future.set_result(Share(None, Usage(), 0, 1))  # alone: the single request is cheaper
            return
        ids = [str(i + 1) for i in range(len(group))]
        try:
            result = await self.client.generate(pack_request([p.request for p in group], ids))
        except ProviderError:
            for index, pending in enumerate(group):
                pending.future.set_result(Share(None, Usage(), int(index == 0), len(group)))
            return
        except BaseException as exc:  # cancellation or a bug: never leave a product waiting forever
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            raise
        self.sent += 1
        self._deliver(group, ids, result)

    def _deliver(self, group: list[_Pending], ids: list[str], result: Any) -> None:
        entries = split_answer(result.text, ids)
        outputs: list[Any] = []
        for pending, item_id in zip(group, ids, strict=True):
            entry = entries.get(item_id)
            try:
                outputs.append(None if entry is None else pending.parse(orjson.dumps(entry).decode()))
            except OutputError:
                outputs.append(None)
        weights = [len(orjson.dumps(entries.get(i, {}))) for i in ids]
        usages = split_usage(result.usage, weights)
        for index, (pending, output, usage) in enumerate(zip(group, outputs, usages, strict=True)):
            pending.future.set_result(Share(output, usage, int(index == 0), len(group), result.cached))
