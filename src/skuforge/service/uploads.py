"""Uploaded catalogs: streamed to disk under a server-generated name, with size and type checks.

A client never chooses a path: files are stored as `SKUFORGE_HOME/catalogs/<id><ext>` with an id like
`c-3f9a0c1b2d4e`, and every id from a URL is checked against that pattern before it touches the disk. The
size limit is enforced while the bytes arrive (not after), and the type is checked twice: the extension
must be a supported catalog format and the first bytes must look like that format (a zip with
`xl/workbook.xml` for xlsx, `PAR1` for parquet, text without NUL bytes for csv/tsv/jsonl).
"""

from __future__ import annotations

import os
import re
import secrets
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from skuforge.catalog import SUPPORTED_FORMATS
from skuforge.errors import NotFoundError
from skuforge.service.errors import ApiError

CATALOG_ID = re.compile(r"^c-[0-9a-f]{12}$")
_MAX_NAME = 120


@dataclass
class StoredCatalog:
    id: str
    name: str  # the name the user uploaded it under, for display and download names only
    format: str
    size: int
    uploaded_at: float
    path: str

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path")
        return data


def check_id(catalog_id: str) -> str:
    if not CATALOG_ID.match(catalog_id):
        raise ApiError(
            404,
            f"No catalog '{catalog_id[:60]}'.",
            "Catalog ids look like c-3f9a0c1b2d4e; list them with GET /api/catalogs.",
        )
    return catalog_id


def clean_name(filename: str) -> str:
    """The display name: the last path component, control characters removed, length capped."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip() or "catalog"
    return base[-_MAX_NAME:]


def extension_of(filename: str) -> str:
    suffix = Path(clean_name(filename)).suffix.lower()
    if suffix not in SUPPORTED_FORMATS:
        raise ApiError(
            415,
            f"'{clean_name(filename)}' is not a catalog file skuforge reads.",
            f"Upload one of: {', '.join(SUPPORTED_FORMATS)}.",
        )
    return suffix


def check_content(path: Path, fmt: str, name: str) -> None:
    """Magic-byte check: the file really is what its extension says."""
    with path.open("rb") as handle:
        head = handle.read(8192)
    problem = None
    if fmt == "xlsx":
        if not head.startswith(b"PK\x03\x04"):
            problem = "it is not a zip-based Excel workbook"
        else:
            try:
                with zipfile.ZipFile(path) as archive:
                    if "xl/workbook.xml" not in archive.namelist():
                        problem = "the zip holds no Excel workbook (xl/workbook.xml)"
            except zipfile.BadZipFile:
                problem = "the zip is damaged"
    elif fmt == "parquet":
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 4))
            tail = handle.read(4)
        if not (head.startswith(b"PAR1") and tail == b"PAR1"):
            problem = "it has no Parquet header and footer"
    elif b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        problem = "it holds binary data, not text"
    elif fmt == "jsonl" and head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] not in (b"{", b""):
        problem = "its first line is not a JSON object"
    if problem:
        raise ApiError(
            415,
            f"'{name}' does not look like a {fmt} file: {problem}.",
            "Upload the catalog itself, saved in the format its extension names.",
        )


class CatalogFiles:
    """The catalogs folder: save (streaming), list, get, replace and delete."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes

    def _meta_path(self, catalog_id: str) -> Path:
        return self.folder / f"{check_id(catalog_id)}.json"

    async def save(
        self, filename: str, chunks: AsyncIterator[bytes], replace: str | None = None
    ) -> StoredCatalog:
        suffix = extension_of(filename)
        name = clean_name(filename)
        catalog_id = check_id(replace) if replace else f"c-{secrets.token_hex(6)}"
        partial = self.folder / f".{catalog_id}.{secrets.token_hex(4)}.part"
        size = 0
        try:
            with partial.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise too_large(self.max_bytes)
                    out.write(chunk)
            if size == 0:
                raise ApiError(400, f"'{name}' is empty.", "Upload a catalog with a header row and products.")
            fmt = SUPPORTED_FORMATS[suffix]
            check_content(partial, fmt, name)
            if replace:
                self.delete(replace)
            final = self.folder / f"{catalog_id}{suffix}"
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        stored = StoredCatalog(catalog_id, name, fmt, size, time.time(), str(final))
        self._meta_path(catalog_id).write_bytes(orjson.dumps(asdict(stored)))
        return stored

    def get(self, catalog_id: str) -> StoredCatalog:
        meta = self._meta_path(catalog_id)
        if not meta.exists():
            raise NotFoundError(
                f"No catalog '{catalog_id}'.", "List catalogs with GET /api/catalogs, or upload one."
            )
        return StoredCatalog(**orjson.loads(meta.read_bytes()))

    def list(self) -> list[StoredCatalog]:
        found = []
        for meta in self.folder.glob("c-*.json"):
            try:
                found.append(StoredCatalog(**orjson.loads(meta.read_bytes())))
            except (OSError, ValueError, TypeError):
                continue
        return sorted(found, key=lambda c: c.uploaded_at, reverse=True)

    def delete(self, catalog_id: str) -> None:
        stored = self.get(catalog_id)
        Path(stored.path).unlink(missing_ok=True)
        self._meta_path(catalog_id).unlink(missing_ok=True)

    def by_path(self, path: str) -> StoredCatalog | None:
        """The uploaded catalog stored at `path` (a job's catalog), for display names."""
        stem = Path(path).stem
        if Path(path).parent == self.folder and CATALOG_ID.match(stem):
            try:
                return self.get(stem)
            except NotFoundError:
                return None
        return None


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"The upload is larger than the limit of {limit / (1024 * 1024):,.0f} MB.",
        "Split the catalog, or start the service with a larger --max-upload-mb.",
    )
