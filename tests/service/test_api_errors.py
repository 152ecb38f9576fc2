"""One JSON error shape everywhere, and no access without the token."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import TOKEN


def assert_error_shape(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    error = body["error"]
    assert {"code", "message", "hint"} <= set(error)
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert error["hint"] is None or isinstance(error["hint"], str)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/api/catalogs"),
        ("GET", "/api/jobs"),
        ("POST", "/api/jobs"),
        ("GET", "/api/recipes"),
        ("GET", "/api/schedules"),
        ("GET", "/api/health"),
        ("GET", "/openapi.json"),
        ("POST", "/api/try"),
        ("GET", "/api/jobs/j-1/events"),
        ("DELETE", "/api/catalogs/c-000000000000"),
    ],
)
def test_requests_without_a_token_get_401_in_the_shared_shape(
    make_client: Any, method: str, path: str
) -> None:
    client = make_client(bearer=False)
    response = client.request(method, path)
    assert response.status_code == 401
    assert_error_shape(response.json(), "unauthorized")
    assert "Bearer" in response.json()["error"]["hint"]


def test_a_wrong_bearer_token_is_refused(make_client: Any) -> None:
    client = make_client(bearer=False)
    response = client.get("/api/jobs", headers={"Authorization": "Bearer not-the-token"})
    assert response.status_code == 401
    assert_error_shape(response.json(), "unauthorized")


def test_console_pages_without_a_session_redirect_to_login(make_client: Any) -> None:
    client = make_client(bearer=False)
    response = client.get("/jobs?lang=zh", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=/jobs")


def test_unknown_job_is_404_in_the_shared_shape(client: TestClient) -> None:
    response = client.get("/api/jobs/j-nope")
    assert response.status_code == 404
    assert_error_shape(response.json(), "not_found")


def test_unknown_path_is_404_in_the_shared_shape(client: TestClient) -> None:
    response = client.get("/api/no-such-thing")
    assert response.status_code == 404
    assert_error_shape(response.json(), "not_found")


def test_validation_errors_are_422_in_the_shared_shape_with_problems(client: TestClient) -> None:
    response = client.post("/api/jobs", json={"recipe": 5, "surprise": True})
    assert response.status_code == 422
    body = response.json()
    assert_error_shape(body, "validation_error")
    wheres = {p["where"] for p in body["error"]["problems"]}
    assert "body.catalog" in wheres and "body.surprise" in wheres


def test_a_crash_is_500_in_the_shared_shape_without_a_traceback(client: TestClient, monkeypatch: Any) -> None:
    from skuforge.service.api import jobs as job_api

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(job_api, "view", boom)
    client.app.state.ctx.store.create_job(kind="run", catalog="x.csv", recipe="title", id="j-crash")
    response = client.get("/api/jobs/j-crash")
    assert response.status_code == 500
    assert_error_shape(response.json(), "internal_error")
    assert "secret internals" not in response.text and "Traceback" not in response.text


def test_a_recipe_mistake_keeps_its_message_and_hint(client: TestClient) -> None:
    response = client.get("/api/recipes/titel")
    assert response.status_code == 400
    body = response.json()
    assert_error_shape(body, "recipe_error")
    assert "Did you mean 'title'" in body["error"]["hint"]


def test_openapi_document_lists_every_api_route_with_a_summary(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/jobs/{job_id}/export" in spec["paths"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"


def test_the_login_form_sets_a_strict_httponly_secure_session_cookie(make_client: Any) -> None:
    client = make_client(bearer=False)
    response = client.post(
        "/login", data={"token": TOKEN, "user": "Mei", "next": "/jobs"}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/jobs"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
    assert client.get("/jobs").status_code == 200


def test_login_never_redirects_off_site(make_client: Any) -> None:
    client = make_client(bearer=False)
    response = client.post(
        "/login", data={"token": TOKEN, "next": "//evil.example/x"}, follow_redirects=False
    )
    assert response.headers["location"] == "/"


def test_a_wrong_login_token_shows_the_form_again_with_401(make_client: Any) -> None:
    client = make_client(bearer=False)
    response = client.post("/login", data={"token": "guess"}, follow_redirects=False)
    assert response.status_code == 401
    assert "skuforge_session" not in response.headers.get("set-cookie", "")


def test_console_posts_without_the_csrf_token_are_refused(make_client: Any) -> None:
    client = make_client(bearer=False)
    client.post("/login", data={"token": TOKEN})
    response = client.post("/api/jobs/j-x/pause")  # session cookie, no X-CSRF-Token
    assert response.status_code == 403
    assert_error_shape(response.json(), "csrf_failed")
    response = client.post("/console/jobs/j-x/pause", data={"csrf": "forged"}, follow_redirects=False)
    assert response.status_code == 403


def test_token_file_is_created_once_with_mode_0600(tmp_path: Any, monkeypatch: Any) -> None:
    from skuforge.service.auth import load_token

    monkeypatch.delenv("SKUFORGE_TOKEN", raising=False)
    token, created = load_token(tmp_path)
    again, created_again = load_token(tmp_path)
    assert created and not created_again and token == again and len(token) >= 32
    assert (tmp_path / "service-token").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("SKUFORGE_TOKEN", "from-env")
    assert load_token(tmp_path) == ("from-env", False)
