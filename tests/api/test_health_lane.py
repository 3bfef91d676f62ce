"""The health probe stays answerable when every thread of the request pool is busy (issue 19)."""

from __future__ import annotations

import threading
import time

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


def test_health_skips_its_query_only_while_the_stream_poller_answers(client: TestClient) -> None:
    """With live streams the poller queries the database every poll; a probe then needs no
    thread. Without a fresh poller answer it asks the database itself."""
    from app.api.meta import _probe_lane

    hub = client.app.state.streams  # type: ignore[attr-defined]
    lane = client.portal.call(_probe_lane)
    holders = [object() for _ in range(int(lane.total_tokens))]
    for holder in holders:
        client.portal.call(lane.acquire_on_behalf_of, holder)
    fresh: list[httpx.Response] = []
    stale: list[httpx.Response] = []
    try:
        hub.database_answered_at = time.monotonic()
        probe = threading.Thread(target=lambda: fresh.append(client.get("/api/health")))
        probe.start()
        probe.join(timeout=15)
        assert fresh and fresh[0].status_code == 200, "a fresh poller answer was not used"
        hub.database_answered_at = None
        waiting = threading.Thread(target=lambda: stale.append(client.get("/api/health")))
        waiting.start()
        waiting.join(timeout=2)
        assert not stale, "without a fresh poller answer the probe must query the database"
    finally:
        for holder in holders:
            client.portal.call(lane.release_on_behalf_of, holder)
    waiting.join(timeout=15)
    assert stale and stale[0].json()["status"] == "ok"
