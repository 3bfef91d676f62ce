"""The health probe stays answerable when every thread of the request pool is busy (issue 19)."""

from __future__ import annotations

import threading

import anyio.to_thread
import httpx
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.conftest import BASE_URL


def test_health_answers_while_the_request_thread_pool_is_exhausted(client: TestClient) -> None:
    limiter = client.portal.call(anyio.to_thread.current_default_thread_limiter)
    holders = [object() for _ in range(int(limiter.total_tokens))]
    for holder in holders:
        client.portal.call(limiter.acquire_on_behalf_of, holder)
    answers: list[httpx.Response] = []
    try:
        probe = threading.Thread(target=lambda: answers.append(client.get("/api/health")))
        probe.start()
        probe.join(timeout=15)
        assert answers, "the health probe queued behind the exhausted request thread pool"
        assert answers[0].status_code == 200
        assert answers[0].json()["status"] == "ok"
    finally:
        for holder in holders:
            client.portal.call(limiter.release_on_behalf_of, holder)
    probe.join(timeout=15)


def test_the_request_thread_pool_has_the_configured_size(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"web_threads": 3}))
    try:
        with TestClient(app, base_url=BASE_URL) as client:
            limiter = client.portal.call(anyio.to_thread.current_default_thread_limiter)
            assert limiter.total_tokens == 3
            assert client.get("/api/projects").status_code == 200
    finally:
        app.state.engine.dispose()
