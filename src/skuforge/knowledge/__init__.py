"""Knowledge bases: ingest guides and approved copy, search them, and feed what fits into prompts.

open_kb(name, create=True).add_paths([...])     ingest files (incremental: unchanged files are skipped)
search(name, "query", k=5, where=..., mode=...)  hybrid (vector + BM25 via RRF), vector or keyword
retrieve(name, "query", k=3, max_tokens=600)    passages delimited as <reference> data, for recipes
similar_examples(recipe, "query", k=3)          approved outputs of a recipe, most similar inputs first
add_approved_example(recipe, input, output, source)   called by review on approve/edit
"""

from skuforge.knowledge.chunking import Chunk, chunk_markdown, split_sentences
from skuforge.knowledge.embedders import DEFAULT_EMBEDDER, Embedder, get_embedder, register_embedder
from skuforge.knowledge.filters import parse_where
from skuforge.knowledge.index import IngestReport, KnowledgeBase, list_kbs, open_kb, remove_kb
from skuforge.knowledge.retrieval import Example, Retrieved, add_approved_example, retrieve, similar_examples
from skuforge.knowledge.search import Hit, search

__all__ = [
    "DEFAULT_EMBEDDER",
    "Chunk",
    "Embedder",
    "Example",
    "Hit",
    "IngestReport",
    "KnowledgeBase",
    "Retrieved",
    "add_approved_example",
    "chunk_markdown",
    "get_embedder",
    "list_kbs",
    "open_kb",
    "parse_where",
    "register_embedder",
    "remove_kb",
    "retrieve",
    "search",
    "similar_examples",
    "split_sentences",
]
