"""`skuforge images` over a catalog: bad rows fail with reasons, the batch goes on, reruns resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import openpyxl
import pytest

from skuforge.cli.main import main
from skuforge.store import open_store


def _catalog(tmp_path: Path, examples: Path, bomb: bytes, extra: list[tuple[str, str]]) -> Path:
    for name in ("B074M5HPBD.jpg", "B07GTFSCHB.jpg"):
        shutil.copy(examples / name, tmp_path / name)
    data = (examples / "B0799CK52K.jpg").read_bytes()
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "huge.png").write_bytes(bomb)
    rows = [("bulb", "B074M5HPBD.jpg"), ("half", "half.jpg"), ("huge", "huge.png"), ("jar", "B07GTFSCHB.jpg")]
    rows += extra
    path = tmp_path / "products.csv"
    path.write_text("sku,image\n" + "".join(f"{s},{i}\n" for s, i in rows), encoding="utf-8")
    return path


def test_failing_rows_are_recorded_and_the_batch_continues(
    tmp_path: Path, examples: Path, bomb: bytes, server, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    server.start()
    extra = [("meta", "http://169.254.169.254/latest/meta-data/"), ("gone", server.url("/gone.jpg"))]
    catalog = _catalog(tmp_path, examples, bomb, extra)
    out = tmp_path / "out.xlsx"
    args = [
        "images",
        str(catalog),
        "--image-column",
        "image",
        "--out-dir",
        str(tmp_path / "img"),
        "--ops",
        "cutout,background:white,compose",
        "--rules",
        "amazon-main",
        "--out",
        str(out),
        "--id-column",
        "sku",
        "--allow-host",
        "127.0.0.1",
        "--workers",
        "0",
        "--quiet",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2 done" in printed and "4 failed" in printed

    sheet = openpyxl.load_workbook(out)["Enriched"]
    rows = {r[0]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    header = [c.value for c in sheet[1]]
    assert header == ["sku", "image", "image_main", "image_inspect"]
    assert rows["bulb"][3] == "pass (amazon-main)" and Path(rows["bulb"][2]).is_file()
    assert "damaged or truncated" in rows["half"][3]
    assert "too large to decode safely" in rows["huge"][3]
    assert "link-local address (169.254.169.254)" in rows["meta"][3]
    assert "HTTP 404" in rows["gone"][3]

    store = open_store()
    (job,) = store.list_jobs(kind="images")
    assert job.state == "done"
    statuses = {i.row_id: i.status for i in store.items(job.id)}
    assert statuses == {
        "bulb": "done",
        "jar": "done",
        "half": "failed",
        "huge": "failed",
        "meta": "failed",
        "gone": "failed",
    }
    store.close()

    # a rerun resumes the same job: finished rows are skipped, failed ones are tried again
    assert main(args) == 0
    assert "4 failed, 2 already finished" in capsys.readouterr().out
    assert server.requests == ["/gone.jpg", "/gone.jpg"]


def test_process_pool_produces_the_same_files(
    tmp_path: Path, examples: Path, bomb: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = _catalog(tmp_path, examples, bomb, [])
    args = [
        "images",
        str(catalog),
        "--image-column",
        "image",
        "--out-dir",
        str(tmp_path / "img"),
        "--ops",
        "cutout,background:white,compose:format=png,size=600,min_side=600",
        "--workers",
        "2",
        "-q",
        "--id-column",
        "sku",
    ]
    assert main(args) == 0
    assert "2 done, 0 flagged (written, failing the rules), 2 failed" in capsys.readouterr().out
    produced = sorted(p.name for p in (tmp_path / "img").iterdir())
    assert produced == ["000000_bulb.png", "000003_jar.png"]


def test_unknown_image_column_names_the_columns(
    tmp_path: Path, examples: Path, bomb: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = _catalog(tmp_path, examples, bomb, [])
    code = main(["images", str(catalog), "--image-column", "picture", "--out-dir", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "Image column 'picture' is not in products.csv" in err and "sku, image" in err


def test_bad_op_spec_is_a_user_error_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "c.csv"
    catalog.write_text("sku,image\na,a.jpg\n", encoding="utf-8")
    code = main(
        ["images", str(catalog), "--image-column", "image", "--out-dir", str(tmp_path), "--ops", "blur"]
    )
    assert code == 2
    assert "Unknown image op 'blur'" in capsys.readouterr().err
