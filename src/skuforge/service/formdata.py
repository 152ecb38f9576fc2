"""Read an upload as it streams in: a raw body, or one file in a multipart form, without spooling first.

Starlette's form parser writes the whole file to a temporary file before a handler sees it, so a size limit
checked afterwards lets a client fill the disk. Here the body is fed to python-multipart chunk by chunk and
the file's bytes are handed on as they arrive, so `CatalogFiles.save` stops at the limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from skuforge.errors import require
from skuforge.service.errors import ApiError

_MAX_FIELD = 4096


class MultipartUpload:
    """One file part (field `file`) plus small text fields, parsed while the body arrives."""

    def __init__(self, request: Request, boundary: bytes) -> None:
        multipart = require("python_multipart.multipart", "Uploads", "service")
        self._body = request.stream()
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self._pending: list[bytes] = []
        self._headers: dict[str, bytes] = {}
        self._field = b""
        self._part: dict[str, Any] = {}
        self._parse_options = multipart.parse_options_header
        self._parser = multipart.MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._begin,
                "on_header_field": self._hfield,
                "on_header_value": self._hvalue,
                "on_header_end": self._hend,
                "on_headers_finished": self._headers_done,
                "on_part_data": self._data,
            },
        )
        self._header_name = b""
        self._header_value = b""
        self._done = False

    def _begin(self) -> None:
        self._headers, self._part = {}, {}

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _hvalue(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _hend(self) -> None:
        self._headers[self._header_name.lower().decode("latin-1")] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_done(self) -> None:
        _, options = self._parse_options(self._headers.get("content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        is_file = filename is not None and name == "file" and self.filename is None
        if is_file:
            self.filename = filename.decode("utf-8", "replace")
        self._part = {"name": name, "file": is_file, "value": b""}

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._part.get("file"):
            self._pending.append(data[start:end])
            return
        value = self._part.get("value", b"") + data[start:end]
        if len(value) > _MAX_FIELD:
            raise ApiError(
                413, f"Form field '{self._part.get('name')}' is too long.", "Send short text fields only."
            )
        self._part["value"] = value
        self.fields[self._part["name"]] = value.decode("utf-8", "replace")

    async def _feed(self) -> bool:
        try:
            chunk = await self._body.__anext__()
        except StopAsyncIteration:
            self._parser.finalize()
            self._done = True
            return False
        self._parser.write(chunk)
        return True

    async def open(self) -> str:
        """Read until the file part begins; returns its file name."""
        while self.filename is None and await self._feed():
            pass
        if self.filename is None:
            raise ApiError(
                400,
                "The form has no file field named 'file'.",
                "Send multipart/form-data with the catalog in a field called 'file'.",
            )
        return self.filename

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes as they arrive; afterwards `fields` holds every text field of the form."""
        while True:
            while self._pending:
                yield self._pending.pop(0)
            if self._done or not await self._feed():
                while self._pending:
                    yield self._pending.pop(0)
                return


async def raw_chunks(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


def boundary_of(content_type: str) -> bytes | None:
    kind, _, rest = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    for part in rest.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    raise ApiError(400, "The multipart upload has no boundary.", "Let your HTTP client build the form body.")


def check_declared_size(request: Request, limit: int) -> None:
    """Refuse at once when Content-Length already says the body is over the limit."""
    from skuforge.service.uploads import too_large

    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise too_large(limit)
