"""`check_output_path`: an output that would overwrite the input or cannot be written is refused before
the first request, with what is wrong and what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from skuforge.catalog import check_output_path
from skuforge.errors import CatalogError


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "catalog.csv"
    path.parent.mkdir()
    path.write_text("sku,title\nA1,Mug\n", encoding="utf-8")
    return path


def test_a_writable_output_with_a_known_extension_passes_and_leaves_nothing_behind(catalog: Path) -> None:
    check_output_path(catalog.parent / "enriched.xlsx", catalog)
    check_output_path(catalog.parent, catalog)  # a folder: <stem>.enriched.csv inside it
    assert sorted(p.name for p in catalog.parent.iterdir()) == ["catalog.csv"]


def test_the_output_cannot_be_the_input_however_it_is_spelled(catalog: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.csv"
    link.symlink_to(catalog)
    hard = tmp_path / "hard.csv"
    os.link(catalog, hard)
    spellings = [catalog, catalog.parent / ".." / "data" / "catalog.csv", link, hard]
    for out in spellings:
        with pytest.raises(CatalogError) as caught:
            check_output_path(out, catalog)
        assert caught.value.message == f"The output path {out} is the input catalog catalog.csv itself."
        assert caught.value.hint == "Choose another output path; skuforge never overwrites its input."
    assert catalog.read_text(encoding="utf-8") == "sku,title\nA1,Mug\n"


def test_the_failures_file_of_the_output_cannot_be_the_input(tmp_path: Path) -> None:
    source = tmp_path / "feed.failures.csv"
    source.write_text("sku\nA1\n", encoding="utf-8")
    with pytest.raises(
        CatalogError, match="The failures file of the output .*feed.failures.csv is the input"
    ):
        check_output_path(tmp_path / "feed.csv", source)
    check_output_path(tmp_path / "feed.xlsx", source)  # xlsx keeps failures in a sheet


def test_an_output_folder_that_does_not_exist_is_refused(catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "no-such-folder" / "out.csv"
    with pytest.raises(CatalogError) as caught:
        check_output_path(out, catalog)
    assert caught.value.message == f"Cannot write the output {out}: the folder {out.parent} does not exist."
    assert caught.value.hint == "Create the folder first, or choose another --out."


def test_an_output_under_a_file_is_refused(catalog: Path) -> None:
    with pytest.raises(CatalogError, match="catalog.csv is a file, not a folder"):
        check_output_path(catalog / "out.csv", catalog)


def test_an_unwritable_output_folder_is_refused(catalog: Path, locked_folder: Path) -> None:
    with pytest.raises(CatalogError, match=rf"the folder {locked_folder} is not writable \("):
        check_output_path(locked_folder / "out.csv", catalog)


@pytest.fixture
def locked_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder the current user cannot create files in. Root writes anywhere a mode allows, so for root:
    /sys where it refuses even root, else a folder made immutable (`chattr +i`, which binds root too)."""
    folder = tmp_path / "locked"
    if os.geteuid() != 0:
        folder.mkdir(mode=0o500)
        yield folder
        return
    if Path("/sys").is_dir() and not _can_create_in(Path("/sys")):
        yield Path("/sys")
        return
    folder.mkdir()
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("no folder here that root cannot write to (/sys is writable, chattr +i is refused)")
    try:
        yield folder
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def _can_create_in(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


def test_an_unknown_output_extension_is_refused_with_the_supported_ones(catalog: Path) -> None:
    with pytest.raises(CatalogError) as caught:
        check_output_path(catalog.parent / "out.xls", catalog)
    assert caught.value.message == "Cannot tell the format of out.xls (.xls)."
    assert "save as .xlsx" in (caught.value.hint or "")
    with pytest.raises(CatalogError, match=r"Supported extensions: \.csv, \.tsv"):
        check_output_path(catalog.parent / "out.docx", catalog)
