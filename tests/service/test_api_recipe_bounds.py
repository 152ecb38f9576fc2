"""`PUT /api/recipes/{name}` and `POST /api/recipes/validate` refuse a recipe whose templates the sandbox
stops on a sample row, so a recipe saved through the API cannot blow up a run later."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

BLOWUP = """\
name: blowup
version: "1"
instruction: "Write a title. {{ 'x'|center(999999999) }}"
input: {fields: [title]}
output: {fields: {title: string}}
"""


def test_a_recipe_that_blows_up_on_a_sample_row_is_not_saved(client: TestClient) -> None:
    response = client.put("/api/recipes/blowup", content=BLOWUP, headers={"Content-Type": "text/plain"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_recipe"
    assert error["message"] == (
        "The recipe has 1 problem(s); line 3: a render against a sample row was stopped by the sandbox: "
        "center() would be 999,999,999 characters long, over the limit of 200,000"
    )
    assert not (client.app.state.ctx.home / "recipes" / "blowup.yaml").exists()


@pytest.mark.parametrize(
    "template", ["{{ '%999999999s'|format(title) }}", "{{ title|indent(999999999, true) }}"]
)
def test_validate_lists_the_sandbox_problem_with_its_line(client: TestClient, template: str) -> None:
    body = BLOWUP.replace("{{ 'x'|center(999999999) }}", template)
    found = client.post("/api/recipes/validate", content=body, headers={"Content-Type": "text/plain"}).json()
    assert found["valid"] is False
    assert [(p["line"], p["where"]) for p in found["problems"]] == [(3, "step 'blowup', instruction")]
    assert "over the limit of 200,000" in found["problems"][0]["message"]
