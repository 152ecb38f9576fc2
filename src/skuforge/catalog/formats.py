"""Which file formats a catalog can be, decided by extension, and where an enriched copy is written.

The extension is the contract: operators name files by what they are, and a sniffed guess that reads a
renamed file "successfully" produces garbage further down the pipeline. So an unknown or misleading
extension fails early with the list of formats we understand.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from skuforge.errors import CatalogError

SUPPORTED_FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
"""File extension (lower case, with the dot) -> format name."""

FORMAT_EXTENSIONS: dict[str, str] = {
    "csv": ".csv",
    "tsv": ".tsv",
    "xlsx": ".xlsx",
    "jsonl": ".jsonl",
    "parquet": ".parquet",
}
"""Format name -> the extension used when skuforge writes that format."""

_HINTS_BY_EXTENSION = {
    ".xls": "Old binary .xls files are not supported: open it in Excel or LibreOffice and save as .xlsx.",
    ".json": "For JSON, write one product object per line and name the file .jsonl.",
    ".txt": "If it is a delimited text file, rename it to .csv (comma or semicolon) or .tsv (tab).",
    ".gz": "Decompress the file first (gunzip) and give the catalog itself.",
    ".zip": "Unzip the archive and give the catalog file inside it.",
}


def _supported_list() -> str:
    return ", ".join(SUPPORTED_FORMATS)


def infer_format(path: str | Path) -> str:
    """The format name ('csv', 'tsv', 'xlsx', 'jsonl', 'parquet') for a path, from its extension."""
    suffix = Path(path).suffix.lower()
    fmt = SUPPORTED_FORMATS.get(suffix)
    if fmt is not None:
        return fmt
    shown = suffix or "no extension"
    hint = _HINTS_BY_EXTENSION.get(suffix, f"Supported extensions: {_supported_list()}.")
    raise CatalogError(f"Cannot tell the format of {Path(path).name} ({shown}).", hint)


def check_format(fmt: str) -> str:
    """Validate an explicit format name, e.g. from `--format`; returns it in lower case."""
    name = fmt.lower().lstrip(".")
    name = SUPPORTED_FORMATS.get("." + name, name)
    if name not in FORMAT_EXTENSIONS:
        raise CatalogError(
            f"Unknown catalog format '{fmt}'.",
            f"Use one of: {', '.join(FORMAT_EXTENSIONS)}.",
        )
    return name


def output_path_for(input_path: str | Path, out: str | Path | None = None) -> Path:
    """Where the enriched copy of `input_path` goes.

    No `out`: next to the input as `<stem>.enriched<ext>` (the input is never overwritten).
    `out` an existing directory: `<out>/<stem>.enriched<ext>`. Otherwise `out` itself, whose extension
    must be a supported one (so `-o result.parquet` converts on the way out).
    """
    source = Path(input_path)
    ext = FORMAT_EXTENSIONS[infer_format(source)]
    default_name = f"{source.stem}.enriched{ext}"
    if out is None:
        return source.with_name(default_name)
    target = Path(out).expanduser()
    if target.is_dir():
        return target / default_name
    infer_format(target)
    _refuse_same_file(target, source, "The output path")
    return target


def check_output_path(out: str | Path, catalog: str | Path) -> None:
    """Refuse, before any request is sent, an output that could not be written or would damage the input.

    Checks, in order: the extension is one skuforge writes; the output is not the catalog itself (however
    spelled: another case, `..`, a symlink or a hard link) and neither is its `.failures` sibling; its
    folder exists, is a folder and is writable (tried with a real file, so read-only mounts are caught).
    `out` may be an existing directory, as for `output_path_for`.
    """
    source = Path(catalog).expanduser()
    target = output_path_for(source, out)
    if infer_format(target) != "xlsx":  # xlsx keeps failures in a sheet; other formats in a sibling file
        _refuse_same_file(failures_path_for(target), source, "The failures file of the output")
    folder = target.parent
    if not folder.exists():
        raise CatalogError(
            f"Cannot write the output {target}: the folder {folder} does not exist.",
            "Create the folder first, or choose another --out.",
        )
    if not folder.is_dir():
        raise CatalogError(
            f"Cannot write the output {target}: {folder} is a file, not a folder.",
            "Choose an --out inside a folder.",
        )
    _check_writable(folder, target)


def _refuse_same_file(target: Path, source: Path, what: str) -> None:
    if target.resolve() == source.resolve() or _same_existing_file(target, source):
        raise CatalogError(
            f"{what} {target} is the input catalog {source.name} itself.",
            "Choose another output path; skuforge never overwrites its input.",
        )


def _same_existing_file(target: Path, source: Path) -> bool:
    try:
        return target.exists() and source.exists() and os.path.samefile(target, source)
    except OSError:
        return False


def _check_writable(folder: Path, target: Path) -> None:
    try:
        handle, probe = tempfile.mkstemp(prefix=".skuforge-write-check-", dir=folder)
    except OSError as exc:
        raise CatalogError(
            f"Cannot write the output {target}: the folder {folder} is not writable ({exc.strerror}).",
            "Choose an --out in a folder you can write to.",
        ) from None
    os.close(handle)
    os.unlink(probe)


def failures_path_for(path: str | Path) -> Path:
    """The sibling file that holds failed rows for a non-xlsx export: `<stem>.failures<ext>`."""
    target = Path(path)
    return target.with_name(f"{target.stem}.failures{target.suffix}")
