"""Catalog uploads: streamed size limit, type checks by extension and magic bytes, server-generated names."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.service.conftest import SAMPLE_CSV, SAMPLE_XLSX, upload


def test_uploaded_catalog_is_listed_previewed_and_deleted(client: TestClient) -> None:
    stored = upload(client, SAMPLE_XLSX)
    assert stored["format"] == "xlsx" and stored["name"] == "catalog.xlsx" and "path" not in stored
    assert [c["id"] for c in client.get("/api/catalogs").json()] == [stored["id"]]
    preview = client.get(f"/api/catalogs/{stored['id']}?rows=3").json()
    assert preview["columns"][:3] == ["sku", "title", "category"]
    assert [r["data"]["sku"] for r in preview["rows"]] == ["EN-1001", "EN-1002", "EN-1003"]
    assert client.delete(f"/api/catalogs/{stored['id']}").status_code == 204
    assert client.get(f"/api/catalogs/{stored['id']}").status_code == 404


def test_a_raw_body_upload_needs_a_filename_and_works_with_one(client: TestClient) -> None:
    body = SAMPLE_CSV.read_bytes()
    assert client.post("/api/catalogs", content=body).status_code == 400
    response = client.post("/api/catalogs?filename=products.csv", content=body)
    assert response.status_code == 201 and response.json()["size"] == len(body)


def test_upload_over_the_limit_is_refused_while_streaming_and_leaves_nothing(make_client: Any) -> None:
    client = make_client(max_upload_bytes=1000)

    def chunks() -> Any:
        for _ in range(50):  # no Content-Length: the limit must be enforced as the bytes arrive
            yield b"sku,title\n" + b"A,b\n" * 25

    response = client.post("/api/catalogs?filename=big.csv", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    folder = client.app.state.ctx.catalogs_dir
    assert list(folder.iterdir()) == []


def test_multipart_upload_over_the_limit_is_refused(make_client: Any) -> None:
    client = make_client(max_upload_bytes=1000)
    big = io.BytesIO(b"sku,title\n" + b"A,b\n" * 2000)
    response = client.post("/api/catalogs", files={"file": ("big.csv", big)})
    assert response.status_code == 413


def test_unsupported_extension_is_415(client: TestClient) -> None:
    response = client.post("/api/catalogs", files={"file": ("notes.exe", b"MZ\x90\x00")})
    assert response.status_code == 415
    assert ".xlsx" in response.json()["error"]["hint"]


def test_a_file_whose_bytes_do_not_match_its_extension_is_415(client: TestClient) -> None:
    fake_xlsx = client.post("/api/catalogs", files={"file": ("catalog.xlsx", b"sku,title\nA,b\n")})
    assert fake_xlsx.status_code == 415 and "Excel" in fake_xlsx.json()["error"]["message"]
    binary_csv = client.post("/api/catalogs", files={"file": ("catalog.csv", b"\x00\x01\x02PK\x03\x04")})
    assert binary_csv.status_code == 415
    fake_parquet = client.post("/api/catalogs", files={"file": ("c.parquet", b"PAR1 not really")})
    assert fake_parquet.status_code == 415
    assert client.app.state.ctx.catalogs_dir.glob("c-*") is not None
    assert not [p for p in client.app.state.ctx.catalogs_dir.iterdir() if p.suffix != ".json"]


def test_file_names_never_choose_the_path_on_disk(client: TestClient) -> None:
    stored = upload(client, SAMPLE_CSV, name="../../../../tmp/evil.csv")
    assert stored["name"] == "evil.csv"
    folder: Path = client.app.state.ctx.catalogs_dir
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{stored['id']}.csv", f"{stored['id']}.json"])
    assert (
        not Path("/tmp/evil.csv").exists()
        or Path("/tmp/evil.csv").stat().st_size != SAMPLE_CSV.stat().st_size
    )


def test_ids_that_are_not_catalog_ids_are_404_before_touching_the_disk(client: TestClient) -> None:
    for bad in ("..%2F..%2Fetc%2Fpasswd", "c-../../x", "c-XYZ", "c-0000000000001"):
        response = client.get(f"/api/catalogs/{bad}")
        assert response.status_code == 404, bad
        assert response.json()["error"]["code"] == "not_found"


def test_replacing_a_catalog_keeps_its_id(client: TestClient) -> None:
    stored = upload(client, SAMPLE_CSV)
    smaller = b"\n".join(SAMPLE_CSV.read_bytes().splitlines()[:4]) + b"\n"
    response = client.put(f"/api/catalogs/{stored['id']}", files={"file": ("catalog.csv", smaller)})
    assert response.status_code == 200 and response.json()["id"] == stored["id"]
    assert len(client.get(f"/api/catalogs/{stored['id']}").json()["rows"]) == 3
