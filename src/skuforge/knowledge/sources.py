"""Read what people put into a knowledge base: documents (Markdown, text, HTML, PDF) and product tables.

A document becomes heading-aware chunks; a table (CSV/TSV/XLSX/JSONL/Parquet) becomes one chunk per
product, its row kept as data so approved copy can be quoted. Every source gets a content hash (file bytes
plus the chunking settings) so re-ingesting an unchanged file is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skuforge.errors import CatalogError, NotFoundError, UserError, require
from skuforge.knowledge.chunking import Chunk, chunk_markdown, html_to_markdown

DOC_SUFFIXES = {".md", ".markdown", ".txt", ".text", ".html", ".htm", ".pdf"}
TABLE_SUFFIXES = {".csv", ".tsv", ".tab", ".xlsx", ".xlsm", ".jsonl", ".ndjson", ".parquet"}
CATEGORY_COLUMNS = ("category", "categories", "product_category", "类目", "品类", "分类")
LOCALE_COLUMNS = ("locale", "language", "lang", "语言")
TITLE_COLUMNS = ("title", "product name", "product_name", "name", "标题", "商品名称")
MAX_FIELD_CHARS = 1500

_SCRIPTS = (
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
)
_LATIN_HINTS = {
    "de": {"und", "der", "die", "das", "mit", "für", "ist", "nicht"},
    "fr": {"et", "le", "la", "les", "des", "pour", "avec", "est"},
    "es": {"y", "el", "los", "las", "para", "con", "es", "del"},
    "it": {"e", "il", "della", "per", "con", "non", "sono", "gli"},
    "pt": {"e", "os", "para", "com", "não", "uma", "do", "da"},
    "nl": {"en", "het", "een", "voor", "met", "niet", "van", "zijn"},
    "en": {"the", "and", "for", "with", "is", "of", "to", "your", "this", "in", "how", "should", "are"},
}


@dataclass
class SourceContent:
    """A source file read and chunked, ready to index."""

    source: str
    kind: str  # "document" | "table"
    content_hash: str
    chunks: list[Chunk] = field(default_factory=list)


def detect_locale(text: str) -> str:
    """A cheap language guess from script, then from common function words; "" when there is no signal."""
    sample = text[:4000]
    counts = {code: len(rx.findall(sample)) for code, rx in _SCRIPTS}
    words = re.findall(r"[a-zà-ÿ]+", sample.lower())
    best = max(counts, key=lambda code: counts[code])
    if counts[best] >= max(2, len(words) // 2):
        return "ja" if counts["ja"] >= 2 else best
    scores = {code: sum(w in hints for w in words) for code, hints in _LATIN_HINTS.items()}
    if any(scores.values()):
        return max(scores, key=lambda code: scores[code])
    return "en" if words else ""  # Latin script with no telling words: English is the likeliest


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files to ingest: files as given, directories walked for supported suffixes, in a stable order."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.suffix.lower() in DOC_SUFFIXES | TABLE_SUFFIXES)
            )
        elif path.is_file():
            if path.suffix.lower() not in DOC_SUFFIXES | TABLE_SUFFIXES:
                raise UserError(
                    f"Cannot ingest {path}: unsupported file type '{path.suffix}'.",
                    f"Supported: {', '.join(sorted(DOC_SUFFIXES | TABLE_SUFFIXES))}.",
                )
            files.append(path)
        else:
            raise NotFoundError(f"No such file or directory: {path}", "Check the path and try again.")
    return files


def content_hash(path: Path, settings: str) -> str:
    digest = hashlib.sha256(settings.encode())
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_text(path: Path) -> str:
    """Decode a text file: UTF-8 (with or without BOM) first, then a detected encoding such as GB18030."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None:
            raise CatalogError(
                f"Cannot decode {path}: not UTF-8 and no other encoding fits.",
                "Save the file as UTF-8 and ingest it again.",
            ) from None
        return str(best)


def _pdf_text(path: Path) -> str:
    pypdf = require("pypdf", "Reading PDF files", "knowledge")
    reader = pypdf.PdfReader(str(path))
    return "\n\n".join(page.extract_text() or "" for page in reader.pages)


def document_text(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _pdf_text(path)
    text = read_text(path)
    return html_to_markdown(text) if suffix in {".html", ".htm"} else text


def load_source(
    path: Path, *, category: str | None, locale: str | None, max_tokens: int, overlap_tokens: int
) -> SourceContent:
    """Read and chunk one file; metadata given on the command line wins over what is detected."""
    settings = f"{max_tokens}/{overlap_tokens}/{category}/{locale}"
    source = str(path.resolve())
    digest = content_hash(path, settings)
    if path.suffix.lower() in TABLE_SUFFIXES:
        chunks = [
            _row_chunk(row_id, data, i, category, locale) for i, (row_id, data) in enumerate(table_rows(path))
        ]
        return SourceContent(source, "table", digest, chunks)
    text = document_text(path)
    chunks = chunk_markdown(text, max_tokens=max_tokens, overlap_tokens=overlap_tokens)
    doc_locale = detect_locale(text) or "en"
    for chunk in chunks:
        chunk.meta.update(category=category or "", locale=locale or detect_locale(chunk.text) or doc_locale)
    return SourceContent(source, "document", digest, chunks)


def _pick(data: dict[str, Any], names: tuple[str, ...]) -> str:
    lowered = {str(k).strip().lower(): v for k, v in data.items()}
    for name in names:
        value = lowered.get(name)
        if value not in (None, ""):
            return str(value).strip()
    return ""


def _row_chunk(
    row_id: str, data: dict[str, Any], position: int, category: str | None, locale: str | None
) -> Chunk:
    """One product as one chunk: 'column: value' lines, headed by its title, its row kept as data."""
    fields = {str(k): str(v)[:MAX_FIELD_CHARS] for k, v in data.items() if v not in (None, "")}
    text = "\n".join(f"{k}: {v}" for k, v in fields.items())
    chunk = Chunk(text=text, heading=_pick(data, TITLE_COLUMNS) or f"row {row_id}", position=position)
    chunk.meta.update(
        category=category or _pick(data, CATEGORY_COLUMNS),
        locale=locale or _pick(data, LOCALE_COLUMNS) or detect_locale(text) or "en",
        row_id=str(row_id),
        data=json.dumps(fields, ensure_ascii=False),
    )
    return chunk


def table_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of a product table, read lazily by the catalog readers (same formats and encodings as runs)."""
    from skuforge.catalog import open_catalog

    for row in open_catalog(path).rows():
        yield str(row.row_id), dict(row.data)
