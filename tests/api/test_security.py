from __future__ import annotations

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.conftest import BASE_URL
from tests.helpers import assert_api_error

TOKEN = "test-token-0123456789"


def test_unknown_api_route_uses_the_error_shape(client: TestClient) -> None:
    assert_api_error(client.get("/api/nope"), 404, "not_found")
    assert_api_error(client.put("/api/projects"), 405, "method_not_allowed")


def test_unknown_page_renders_an_error_page(client: TestClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "Back to projects" in response.text


def test_cross_site_unsafe_requests_are_refused(client: TestClient) -> None:
    payload = {"name": "X", "task_type": "classification"}
    response = client.post("/api/projects", json=payload, headers={"sec-fetch-site": "cross-site"})
    assert_api_error(response, 403, "cross_site_request")
    response = client.post("/api/projects", json=payload, headers={"origin": "http://evil.example"})
    assert_api_error(response, 403, "cross_site_request")
    # same-origin browsers and curl (no Origin) are fine
    ok = client.post(
        "/api/projects",
        json=payload,
        headers={"origin": "http://127.0.0.1", "sec-fetch-site": "same-origin"},
    )
    assert ok.status_code == 201
    assert client.get("/api/projects", headers={"sec-fetch-site": "cross-site"}).status_code == 200


def test_untrusted_host_header_is_refused(client: TestClient) -> None:
    response = client.get("/api/health", headers={"host": "evil.example"})
    assert response.status_code == 400


def test_oversized_json_body_answers_413(client: TestClient, settings: Settings) -> None:
    big = b'{"name": "' + b"x" * (settings.max_json_kb * 1024 + 10) + b'"}'
    response = client.post(
        "/api/projects", content=big, headers={"content-type": "application/json"}
    )
    assert_api_error(response, 413, "request_too_large")


def test_oversized_streamed_body_without_length_answers_413(
    client: TestClient, settings: Settings
) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(settings.max_json_kb + 5):
            yield b"x" * 1024

    response = client.post(
        "/api/projects", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_api_error(response, 413, "request_too_large")


def _token_client(settings: Settings) -> TestClient:
    secured = settings.model_copy(update={"token": __import__("pydantic").SecretStr(TOKEN)})
    return TestClient(create_app(secured), base_url=BASE_URL)


def test_token_protects_the_api(settings: Settings) -> None:
    with _token_client(settings) as client:
        assert_api_error(client.get("/api/projects"), 401, "unauthorized")
        assert_api_error(
            client.get("/api/projects", headers={"authorization": "Bearer wrong-token-xxxx"}),
            401,
            "unauthorized",
        )
        ok = client.get("/api/projects", headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert client.get("/api/health").status_code == 200  # liveness stays public


def test_token_protects_pages_behind_a_login(settings: Settings) -> None:
    with _token_client(settings) as client:
        response = client.get("/", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login")
        bad = client.post("/login", data={"token": "nope", "next": "/"}, follow_redirects=False)
        assert bad.status_code == 401 and "not the studio" in bad.text
        good = client.post(
            "/login", data={"token": TOKEN, "next": "https://evil.example/"}, follow_redirects=False
        )
        assert good.status_code == 303
        assert good.headers["location"] == "/"  # no open redirect
        assert "httponly" in good.headers["set-cookie"].lower()
        assert TOKEN not in good.headers["set-cookie"]
        assert client.get("/").status_code == 200  # cookie now set
        assert client.get("/api/projects").status_code == 200  # GUI fetches use the cookie
