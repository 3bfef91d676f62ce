"""Health and the task catalogue."""

from __future__ import annotations

import asyncio
from typing import Any
from weakref import WeakKeyDictionary

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel
from sqlmodel import Session

from app import __version__
from app.services.meta import database_dialect, task_list
from app.streams import StreamHub
from app.templating import static_url

router = APIRouter(tags=["meta"])


class Health(BaseModel):
    status: str
    version: str
    database: str
    streams: int


# The probe's own lane to a thread: sync routes and dependencies share anyio's default
# limiter (40 threads), so under a browsing load a probe queued there measured the queue, not
# the studio (p95 0.69 s in benchmarks/load.py). Two tokens: probes never wait for pages.
# One lane per event loop, because a limiter belongs to the loop it was made on.
_PROBE_LANES: WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    WeakKeyDictionary()
)


def _probe_lane() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    lane = _PROBE_LANES.get(loop)
    if lane is None:
        lane = _PROBE_LANES[loop] = anyio.CapacityLimiter(2)
    return lane


def _ping(engine: Any) -> str:
    with Session(engine) as session:
        return database_dialect(session=session)


@router.get("/health", response_model=Health, summary="Liveness and database check")
async def health(request: Request) -> Health:
    """Answers 200 when the web process runs and the database answers a query; `streams` is
    the number of live event streams this process serves (see STUDIO_MAX_STREAMS).

    Async with no request-scoped dependencies, so it is answered on the event loop; its one
    query runs on a lane of its own instead of queueing behind page rendering, and is skipped
    when the stream poller's own query answered within the last second (a dashboard's load:
    a probe then costs no thread and no interpreter-lock handover)."""
    hub: StreamHub = request.app.state.streams
    engine = request.app.state.engine
    if hub.database_answered_within(max(1.0, 2 * hub.poll_seconds)):
        dialect = engine.dialect.name  # the stream poller's query just reached the database
    else:
        dialect = await anyio.to_thread.run_sync(_ping, engine, limiter=_probe_lane())
    return Health(status="ok", version=__version__, database=dialect, streams=hub.open_streams)


@router.get("/tasks", summary="Task types, with what each supports in this build")
def tasks() -> dict[str, Any]:
    """The seven task types; `features` lists the workflow stages available for each."""
    return task_list()


# The docs page lives at /docs (outside /api), so it gets a router without the /api prefix.
docs_router = APIRouter(include_in_schema=False)


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>AI Studio API</title>
<link rel="icon" href="{favicon}" type="image/svg+xml">
<link rel="stylesheet" href="{css}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="/openapi.json"></div>
<script src="{bundle}"></script>
<script src="{init}"></script>
</body>
</html>
"""


@docs_router.get("/docs")
def api_docs() -> HTMLResponse:
    """Swagger UI from static/vendor (FastAPI's default page loads it from a CDN and starts
    it with an inline script, which the Content-Security-Policy does not allow)."""
    return HTMLResponse(
        DOCS_PAGE.format(
            favicon=static_url("favicon.svg"),
            css=static_url("vendor/swagger-ui-5.35.0.css"),
            bundle=static_url("vendor/swagger-ui-5.35.0-bundle.js"),
            init=static_url("js/docs.js"),
        )
    )


@docs_router.get("/api/docs")
def api_docs_alias() -> RedirectResponse:
    return RedirectResponse("/docs", status_code=307)
