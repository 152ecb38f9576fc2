"""Guessing the text encoding of a delimited file, and explaining bytes that do not decode.

Supplier exports arrive as UTF-8, UTF-8 with a BOM (Excel's "CSV UTF-8"), or GB18030/GBK (Excel on a
Chinese Windows). We decide from a sample at the start of the file: BOM first, then strict UTF-8, then
GB18030 *only if* the decoded text is mostly Chinese (GB18030 accepts many Latin-1 byte pairs, so "été"
would otherwise turn into CJK noise), then charset-normalizer. A wrong guess shows up later as an
undecodable byte, which `locate_bad_bytes` turns into a file offset and line for the error message.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from skuforge.errors import CatalogError

SAMPLE_BYTES = 256 * 1024
_CHUNK = 1 << 20

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CANDIDATES = ["cp1252", "big5", "shift_jis", "euc_jp", "euc_kr", "cp1250", "cp1251", "iso8859_7", "cp1254"]
"""Legacy encodings seen in supplier exports; restricting charset-normalizer to them keeps small samples
from being read as something exotic (a short Latin-1 sample otherwise comes back as Urdu cp1006)."""
_WESTERN_LOOKALIKES = {"cp1250", "cp1254", "iso8859-2", "iso8859-9", "latin-1", "iso8859-15"}
_GB_FAMILY = {"gb2312", "gbk", "gb18030", "hz", "cp936"}


def detect_encoding(path: Path) -> str:
    """The encoding to read `path` with; a codec name Python's `open` accepts."""
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    if _decodes(sample, "utf-8"):
        return "utf-8"
    if _decodes(sample, "gb18030") and _mostly_chinese(sample.decode("gb18030", errors="ignore")):
        return "gb18030"
    return _normalizer_guess(sample, path)


def _decodes(sample: bytes, encoding: str) -> bool:
    """True when `sample` decodes, allowing a multi-byte character cut off at the end of the sample."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        decoder.decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _mostly_chinese(text: str) -> bool:
    """At least 80% of the non-ASCII characters are CJK ideographs, CJK punctuation or full-width forms."""
    wide = [ch for ch in text if ord(ch) > 127]
    if not wide:
        return True
    cjk = sum(1 for ch in wide if _is_cjk(ord(ch)))
    return cjk >= 0.8 * len(wide)


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x3000 <= code <= 0x303F
        or 0xFF00 <= code <= 0xFFEF
        or 0x2000 <= code <= 0x206F
        or 0x20000 <= code <= 0x2FFFF
    )


def _normalizer_guess(sample: bytes, path: Path) -> str:
    from charset_normalizer import from_bytes

    best = from_bytes(sample, cp_isolation=_CANDIDATES).best()
    if best is None:
        raise CatalogError(
            f"Cannot tell the text encoding of {path.name}: it may be a binary file, not a catalog.",
            "If it is text, pass its encoding explicitly (--encoding gb18030, --encoding latin-1, ...); "
            "otherwise check that this is the file you meant.",
        )
    name = codecs.lookup(best.encoding).name
    if name in _GB_FAMILY:
        return "gb18030"
    if name in _WESTERN_LOOKALIKES and _decodes(sample, "cp1252"):
        return "cp1252"  # on a short sample these are coin flips; Western European exports are far commoner
    return name


def locate_bad_bytes(path: Path, encoding: str) -> tuple[int, int, bytes] | None:
    """(byte offset, line number, the offending bytes) of the first undecodable sequence, or None.

    Only called on the error path, so a second pass over the file is an acceptable cost for a message
    that points at the exact spot.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    consumed, newlines = 0, 0
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(_CHUNK)
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                in_chunk = max(0, exc.start - len(pending))
                line = newlines + chunk[:in_chunk].count(b"\n") + 1
                raw = (pending + chunk)[exc.start : exc.start + 4]
                return consumed - len(pending) + exc.start, line, raw
            if not chunk:
                return None
            consumed += len(chunk)
            newlines += chunk.count(b"\n")


def undecodable_error(path: Path, encoding: str, exc: UnicodeDecodeError) -> CatalogError:
    """A CatalogError that names the encoding tried, the byte offset and the line of the bad bytes."""
    found = locate_bad_bytes(path, encoding)
    if found is None:
        where = f"({exc.reason})"
    else:
        offset, line, raw = found
        where = f"at byte {offset} (line {line}: bytes {raw.hex(' ')})"
    return CatalogError(
        f"{path.name} is not valid {encoding} text {where}.",
        "Pass the file's real encoding, e.g. --encoding gb18030 or --encoding latin-1, "
        "or re-save the file as UTF-8 (Excel: 'CSV UTF-8').",
    )
