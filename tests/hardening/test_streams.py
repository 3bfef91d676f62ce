"""Live streams never starve the studio: no database connection held between polls, a cap
with 503 + Retry-After beyond it, and streams that end when their clients go away."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from contextlib import ExitStack, suppress
from typing import Any, TypeVar

import httpx
import pytest

from tests.hardening.conftest import StudioFactory
from tests.helpers import assert_api_error, wait_for
from tests.support.studio import LiveStudio

pytestmark = pytest.mark.slow
T = TypeVar("T")


async def _open_streams(url: str, count: int, hold: asyncio.Event, opened: list[int]) -> None:
    """Open `count` event streams and read them like browsers do until `hold` is set;
    `opened` gets an entry per stream once its first event arrived."""
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one() -> None:
            async with client.stream("GET", url) as response:
                assert response.status_code == 200, response.status_code

                async def read() -> None:
                    first = True
                    async for line in response.aiter_lines():
                        if first and (line.startswith(("id:", "event:"))):
                            first = False
                            opened.append(1)

                reader = asyncio.create_task(read())
                await hold.wait()
                reader.cancel()

        await asyncio.gather(*(one() for _ in range(count)))


def run_async(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run in a thread of its own: in a full test run this thread may already have
    a running loop (Playwright's sync API in the same worker)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(main())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")  # type: ignore[return-value]


def _health_seconds(studio: LiveStudio) -> float:
    started = time.perf_counter()
    response = httpx.get(f"{studio.url}/api/health", timeout=60)
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


def test_many_open_streams_leave_the_studio_responsive(
    start_studio: StudioFactory, live_db: str | None
) -> None:
    """60 streams are more than the connection pool holds (10 + 30): held connections
    would make every other request wait for the pool and fail."""
    studio = start_studio(database_url=live_db)
    job_id = studio.submit_job("test.count", steps=400, delay=0.1)
    url = f"{studio.url}/api/jobs/{job_id}/events"
    count = 60

    async def scenario() -> tuple[list[float], int]:
        hold, opened = asyncio.Event(), []
        task = asyncio.create_task(_open_streams(url, count, hold, opened))
        while len(opened) < count:
            if task.done():
                task.result()
            await asyncio.sleep(0.2)
        loop = asyncio.get_running_loop()
        times = [await loop.run_in_executor(None, _health_seconds, studio) for _ in range(5)]
        streams = httpx.get(f"{studio.url}/api/health", timeout=60).json()["streams"]
        pages = [httpx.get(f"{studio.url}/jobs/{job_id}", timeout=60) for _ in range(3)]
        assert all(p.status_code == 200 for p in pages)
        hold.set()
        await task
        return times, streams

    times, streams = run_async(scenario)
    assert streams == count
    # Generous for a loaded 2-core machine; a held pool means 5+ s waits and 503/500s.
    assert max(times) < 3.0, times
    wait_for(
        lambda: httpx.get(f"{studio.url}/api/health").json()["streams"] == 0,
        timeout=20,
        what="closed streams to be released",
    )


def test_streams_beyond_the_cap_get_503_with_retry_after(start_studio: StudioFactory) -> None:
    studio = start_studio(env={"STUDIO_MAX_STREAMS": "3"})
    job_id = studio.submit_job("test.count", steps=300, delay=0.1)
    events, card = f"/api/jobs/{job_id}/events", f"/jobs/{job_id}/card-stream"
    with httpx.Client(base_url=studio.url, timeout=30) as client, ExitStack() as stack:
        first = stack.enter_context(client.stream("GET", events))
        held = [stack.enter_context(client.stream("GET", url)) for url in (events, card)]
        assert [r.status_code for r in (first, *held)] == [200, 200, 200]
        refused = client.get(events)
        assert refused.status_code == 503, refused.status_code
        assert_api_error(refused, 503, "too_many_streams")
        assert int(refused.headers["retry-after"]) > 0
        refused_card = client.get(card)
        assert refused_card.status_code == 503
        assert int(refused_card.headers["retry-after"]) > 0
        first.close()
        wait_for(
            lambda: client.get("/api/health").json()["streams"] == 2,
            timeout=20,
            what="the closed stream to free its slot",
        )
        with client.stream("GET", events) as again:
            assert again.status_code == 200


def test_streams_stop_when_their_clients_disconnect(start_studio: StudioFactory) -> None:
    studio = start_studio()
    job_id = studio.submit_job("test.count", steps=300, delay=0.05)

    async def scenario() -> None:
        hold, opened = asyncio.Event(), []
        task = asyncio.create_task(
            _open_streams(f"{studio.url}/jobs/{job_id}/card-stream", 5, hold, opened)
        )
        events = asyncio.create_task(
            _open_streams(f"{studio.url}/api/jobs/{job_id}/events", 15, hold, opened)
        )
        while len(opened) < 20:
            await asyncio.sleep(0.2)
        assert httpx.get(f"{studio.url}/api/health").json()["streams"] == 20
        task.cancel()  # drop the connections without a goodbye
        events.cancel()
        for t in (task, events):
            with suppress(asyncio.CancelledError):
                await t

    run_async(scenario)
    wait_for(
        lambda: httpx.get(f"{studio.url}/api/health").json()["streams"] == 0,
        timeout=20,
        what="streams of vanished clients to end",
    )
    time.sleep(2)  # the job keeps producing events: nothing may be written to dead sockets
    assert "socket.send() raised exception" not in studio.log.read_text()
