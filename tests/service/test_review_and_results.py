"""Review from the service: the Excel round trip over HTTP, rollback, the filter by check, and the results
view (original beside generated, changed and flagged cells)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook

from skuforge.service import results
from skuforge.store import ItemRecord
from tests.service.conftest import SAMPLE_XLSX, upload, wait_for


@pytest.fixture
def run(client: TestClient) -> dict[str, Any]:
    """A finished attributes run over the sample, every item in the review queue."""
    stored = upload(client, SAMPLE_XLSX)
    body = {"catalog": stored["id"], "recipe": "attributes", "model": "fake:", "review_sample": 1.0}
    return wait_for(client, client.post("/api/jobs?kind=run", json=body).json()["id"])


def decide_in_excel(data: bytes, decisions: dict[str, tuple[str, str | None]]) -> bytes:
    """Fill Decision and Edited output by product id, as a reviewer does in Excel."""
    workbook = load_workbook(io.BytesIO(data))
    sheet = workbook["Review"]
    header = [c.value for c in sheet[1]]
    for cells in sheet.iter_rows(min_row=2):
        row_id = cells[header.index("key:row_id")].value
        if row_id in decisions:
            cells[header.index("Decision")].value, cells[header.index("Edited output")].value = decisions[
                row_id
            ]
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_the_review_workbook_round_trips_over_http_and_an_edit_rolls_back(
    client: TestClient, run: dict[str, Any]
) -> None:
    download = client.get(f"/api/jobs/{run['id']}/review/workbook")
    assert download.status_code == 200 and download.headers["x-skuforge-rows"] == "20"
    assert download.headers["content-disposition"].endswith(f'catalog-{run["id"]}-review.xlsx"')
    filled = decide_in_excel(
        download.content,
        {
            "EN-1001": ("approve", None),
            "EN-1002": ("reject", None),
            "EN-1003": ("edit", '{"color": "Crimson"}'),
        },
    )
    report = client.post(
        f"/api/jobs/{run['id']}/review/workbook", files={"file": ("review.xlsx", filled)}
    ).json()
    assert report["applied"] == {"approve": 1, "reject": 1, "edit": 1}
    assert report["undecided"] == 17 and report["problems"] == [] and "path" not in report
    edited = client.get(f"/api/jobs/{run['id']}/review?status=edited").json()["items"]
    assert [(i["row_id"], i["output"]["color"]) for i in edited] == [("EN-1003", "Crimson")]
    history = client.get(f"/api/jobs/{run['id']}/review/history?row_id=EN-1003").json()
    assert history[-1]["who"] == "api" and history[-1]["action"] == "edit"

    undone = client.post(
        f"/api/jobs/{run['id']}/review/rollback", json={"row_id": "EN-1003", "step": "attributes"}
    ).json()
    assert undone["action"] == "rollback" and undone["review"] == "pending"
    exported = client.get(f"/api/jobs/{run['id']}/export?format=csv").text
    assert "Crimson" not in exported
    assert client.get(f"/api/jobs/{run['id']}/review?status=edited").json()["items"] == []


def test_a_workbook_from_another_job_or_not_a_workbook_loses_nothing(
    client: TestClient, run: dict[str, Any]
) -> None:
    sheet = Workbook()
    sheet.active.append(["Row", "Decision"])  # type: ignore[union-attr]
    out = io.BytesIO()
    sheet.save(out)
    wrong = client.post(
        f"/api/jobs/{run['id']}/review/workbook", files={"file": ("mine.xlsx", out.getvalue())}
    )
    assert wrong.status_code == 400 and "key:job" in wrong.json()["error"]["message"]
    csv = client.post(f"/api/jobs/{run['id']}/review/workbook", files={"file": ("r.csv", b"a,b\n")})
    assert csv.status_code == 415
    fake = client.post(f"/api/jobs/{run['id']}/review/workbook", files={"file": ("r.xlsx", b"not a zip")})
    assert fake.status_code == 415
    other = client.post(
        "/api/jobs?kind=run",
        json={
            "catalog": upload(client, SAMPLE_XLSX)["id"],
            "recipe": "title",
            "model": "fake:",
            "review_sample": 1.0,
        },
    ).json()
    wait_for(client, other["id"])
    foreign = decide_in_excel(
        client.get(f"/api/jobs/{other['id']}/review/workbook").content, {"EN-1001": ("approve", None)}
    )
    report = client.post(f"/api/jobs/{run['id']}/review/workbook", files={"file": ("r.xlsx", foreign)}).json()
    assert report["applied"] == {"approve": 0, "reject": 0, "edit": 0}
    assert f"not {run['id']}" in report["problems"][0]["reason"] and report["problems"][0]["row"] == 2
    assert len(client.get(f"/api/jobs/{run['id']}/review").json()["items"]) == 20  # nothing was decided
    assert not any((client.app.state.ctx.home / "review-imports").iterdir())  # uploads are not kept


def test_the_queue_filters_by_check(client: TestClient, run: dict[str, Any]) -> None:
    items = client.get(f"/api/jobs/{run['id']}/items?limit=100").json()["items"]
    flagged_by = {
        i["row_id"]
        for i in items
        if any(f["check"] == "attribute_kind" and not f["ok"] for f in i["findings"] or [])
    }
    kind = client.get(f"/api/jobs/{run['id']}/review?status=all&check=attribute_kind&limit=100").json()[
        "items"
    ]
    assert flagged_by and {i["row_id"] for i in kind} == flagged_by
    page = client.get(f"/api/jobs/{run['id']}/review?status=all&check=attribute_kind&limit=2&offset=1").json()
    assert [i["row_id"] for i in page["items"]] == [i["row_id"] for i in kind[1:3]]


def test_results_put_each_generated_value_beside_the_original(
    client: TestClient, run: dict[str, Any]
) -> None:
    page = client.get(f"/api/jobs/{run['id']}/results?limit=100").json()
    assert page["checks"] == ["schema", "grounding", "verbatim", "attribute_kind"]
    assert len(page["items"]) == 20 and page["next_offset"] is None
    first = page["items"][0]
    assert first["row_id"] == "EN-1001" and first["label"].startswith("AmazonBasics 6W LED Light Bulb")
    rows = {
        r["data"]["sku"]: r["data"]
        for r in client.get(f"/api/catalogs/{upload_id(client)}?rows=100").json()["rows"]
    }
    for item in page["items"]:
        for cell in item["cells"]:
            original = rows[item["row_id"]].get(cell["field"])
            assert cell["original"] == ("" if original is None else str(original).strip())
            assert cell["changed"] == (cell["generated"] != cell["original"] and cell["generated"] != "")
    flagged = [c for i in page["items"] for c in i["cells"] if c["flags"]]
    assert flagged and all(f["reason"] for c in flagged for f in c["flags"])
    only = client.get(f"/api/jobs/{run['id']}/results?check=attribute_kind&limit=100").json()["items"]
    assert only and all(any(f["check"] == "attribute_kind" for c in i["cells"] for f in c["flags"]) or
                        any(f["check"] == "attribute_kind" for f in i["flags"]) for i in only)  # fmt: skip
    done = client.get(f"/api/jobs/{run['id']}/results?status=done&limit=100").json()["items"]
    assert {i["status"] for i in done} == {"done"} and len(done) + len(
        client.get(f"/api/jobs/{run['id']}/results?status=flagged&limit=100").json()["items"]
    ) == 20
    assert client.get(f"/api/jobs/{run['id']}/results?status=nonsense").status_code == 422


def upload_id(client: TestClient) -> str:
    return str(client.get("/api/catalogs").json()[-1]["id"])


def test_a_value_the_catalogs_rows_dropped_carries_the_reason_in_its_results_cell() -> None:
    reason = "'Black' as material dropped: the catalog's filled rows of this category give it as color."
    note = {"check": "catalog_values", "ok": True, "field": "material", "reason": reason}
    item = ItemRecord(
        row_id="K99", row_index=0, step="attributes", key="k", status="done",
        output={"material": None, "size": "30 cm"}, findings=[note],
    )  # fmt: skip
    fields, on_item = results.cells(item, {"material": "", "size": ""})
    assert [(c["field"], c["notes"], c["flags"]) for c in fields] == [
        ("material", [reason], []),
        ("size", [], []),
    ]
    assert on_item == []  # a note, not a flag
