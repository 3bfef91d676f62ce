"""Health, task list and the API docs page."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_api_docs_are_served_from_vendored_files(client: TestClient) -> None:
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert "/static/vendor/swagger-ui-5.35.0-bundle.js" in response.text
    assert "cdn" not in response.text.lower()
    script = re.search(r'src="([^"]+swagger-ui[^"]+)"', response.text)
    assert script is not None
    assert client.get(script.group(1)).status_code == 200
