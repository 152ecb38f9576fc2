"""What recipes see: `retrieve()` for reference passages and `similar_examples()` for approved outputs.

Both are exposed to recipe templates as Jinja globals. Retrieved passages are wrapped as reference data
(`<reference source="style-guide.md#Tone">...</reference>`) so the model can tell quoted knowledge from
instructions, and their total size is capped in tokens so a prompt never balloons.

Approved examples: when a reviewer approves or edits an output, the review module calls
`add_approved_example(recipe, input_text, output_json, source)`; each example is one chunk of the knowledge
base `_examples/<recipe>`, keyed by `source` (approving the same item again replaces its example).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from html import escape
from typing import Any

from skuforge.errors import NotFoundError
from skuforge.knowledge.chunking import Chunk
from skuforge.knowledge.index import check_name, open_kb
from skuforge.knowledge.search import search
from skuforge.providers.tokens import estimate_tokens

EXAMPLES_PREFIX = "_examples/"


@dataclass
class Retrieved:
    """Passages for a prompt: `.text` is ready to paste; `.sources` says what was used and how well it fit."""

    text: str
    sources: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:  # so `{{ retrieve(...) }}` in a template prints the passages
        return self.text

    def __bool__(self) -> bool:
        return bool(self.text)


@dataclass
class Example:
    """An approved output for a recipe, with the input it was made from."""

    input_text: str
    output: Any
    source: str
    score: float


_BLOCK_TAG = re.compile(r"<(/?\s*(?:reference|example|input|output|product)\b)", re.IGNORECASE)


def defuse(text: str) -> str:
    """Escape tags that could close a reference or example block ('</reference>' -> '&lt;/reference>')."""
    return _BLOCK_TAG.sub(r"&lt;\1", text)


def _reference(citation: str, text: str) -> str:
    return f'<reference source="{escape(citation, quote=True)}">\n{defuse(text)}\n</reference>'


def _trim_to_tokens(text: str, budget: int) -> str:
    """Cut text to about `budget` tokens at a word or character boundary, marking the cut."""
    if estimate_tokens(text) <= budget:
        return text
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if estimate_tokens(text[:mid] + " …") <= budget:
            low = mid
        else:
            high = mid - 1
    cut = text[:low]
    if " " in cut[-40:]:
        cut = cut.rsplit(" ", 1)[0]
    return cut + " …" if cut else ""


def retrieve(
    kb: str,
    query: str,
    *,
    k: int = 3,
    where: dict[str, Any] | str | None = None,
    max_tokens: int = 600,
    mode: str = "hybrid",
) -> Retrieved:
    """The best k passages for a query, delimited as reference data, at most `max_tokens` in total."""
    hits = search(kb, query, k=k, where=where, mode=mode)  # type: ignore[arg-type]
    blocks: list[str] = []
    sources: list[dict[str, Any]] = []
    used = 0
    for hit in hits:
        overhead = estimate_tokens(_reference(hit.citation, "")) + 1
        remaining = max_tokens - used - overhead
        if remaining < 8:  # not enough room for a useful passage
            break
        body = _trim_to_tokens(hit.text, remaining)
        if not body:
            break
        block = _reference(hit.citation, body)
        blocks.append(block)
        used += estimate_tokens(block) + 1
        sources.append(
            {
                "kb": hit.kb,
                "source": hit.source,
                "chunk_id": hit.chunk_id,
                "citation": hit.citation,
                "score": round(hit.score, 4),
                "relevance": None if hit.relevance is None else round(hit.relevance, 4),
            }
        )
    return Retrieved(text="\n".join(blocks), sources=sources)


def examples_kb(recipe: str) -> str:
    return check_name(EXAMPLES_PREFIX + recipe)


def add_approved_example(
    recipe: str, input_text: str, output_json: str | dict[str, Any], source: str
) -> None:
    """Store an approved (or edited-then-approved) output as a few-shot example for its recipe."""
    output = output_json if isinstance(output_json, str) else json.dumps(output_json, ensure_ascii=False)
    kb = open_kb(examples_kb(recipe), create=True)
    chunk = Chunk(text=input_text, heading="", position=0)
    chunk.meta.update(category="", locale="", row_id=source, data=output)
    digest = hashlib.sha256(f"{input_text}\0{output}".encode()).hexdigest()
    kb.add_chunks(source, "example", digest, [chunk])


def similar_examples(recipe: str, query: str, k: int = 3, *, min_relevance: float = 0.0) -> list[Example]:
    """The k approved outputs of this recipe whose inputs are most like `query` (none if none approved)."""
    try:
        kb = open_kb(examples_kb(recipe))
    except NotFoundError:
        return []
    hits = search(kb, query, k=k, mode="hybrid")
    examples = []
    for hit in hits:
        if (hit.relevance or 0.0) < min_relevance:
            continue
        try:
            output: Any = json.loads(hit.data or "null")
        except json.JSONDecodeError:
            output = hit.data
        examples.append(Example(input_text=hit.text, output=output, source=hit.source, score=hit.score))
    return examples
