"""Health and the task catalogue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel
from sqlmodel import Session

from app import __version__
from app.deps import get_session, get_streams
from app.services.meta import database_dialect, task_list
from app.streams import StreamHub
from app.templating import static_url

router = APIRouter(tags=["meta"])


class Health(BaseModel):
    status: str
    version: str
    database: str
    streams: int


@router.get("/health", response_model=Health, summary="Liveness and database check")
def health(
    session: Session = Depends(get_session), hub: StreamHub = Depends(get_streams)
) -> Health:
    """Answers 200 when the web process runs and the database answers a query; `streams` is
    the number of live event streams this process serves (see STUDIO_MAX_STREAMS)."""
    return Health(
        status="ok",
        version=__version__,
        database=database_dialect(session=session),
        streams=hub.open_streams,
    )


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
