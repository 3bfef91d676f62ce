"""Health, task list and the API docs page."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient


def test_api_docs_are_served_from_vendored_files(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "/static/vendor/swagger-ui-5.35.0-bundle.js" in response.text
    assert "cdn" not in response.text.lower()
    script = re.search(r'src="([^"]+swagger-ui[^"]+)"', response.text)
    assert script is not None
    assert client.get(script.group(1)).status_code == 200


def test_api_docs_alias_redirects_to_docs(client: TestClient) -> None:
    response = client.get("/api/docs", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/docs"


def test_every_endpoint_is_tagged_and_described(app: FastAPI) -> None:
    """A summary or a docstring of its own, not only the title FastAPI derives from the name."""
    spec = app.openapi()
    declared = {tag["name"] for tag in spec["tags"]}
    operations = [
        (f"{method.upper()} {path}", op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]
    assert len(operations) > 5
    for name, op in operations:
        assert op.get("tags"), f"{name} has no tag"
        assert set(op["tags"]) <= declared, f"{name}: tag missing from OPENAPI_TAGS"
        words = op["operationId"].split("_")
        derived = {" ".join(words[:n]).title() for n in range(1, len(words) + 1)}
        explicit_summary = op.get("summary") and op["summary"] not in derived
        assert explicit_summary or op.get("description", "").strip(), f"{name} is not described"
