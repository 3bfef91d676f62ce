"""create_app(): settings, database, routers, static files, middleware and error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from app import __version__
from app.api import OPENAPI_TAGS, api_router, api_router_docs
from app.config import Settings, get_settings
from app.db import engine_for
from app.handlers import install_handlers
from app.security import SecurityMiddleware
from app.storage import Storage
from app.streams import StreamHub
from app.templating import STATIC_DIR
from app.web import web_router

DESCRIPTION = """
AI Studio's REST API. Every GUI action has a JSON twin here.

* Lists answer `{"items": [...], "total": N, "page": P, "page_size": S}`.
* Errors answer `{"error": {"code": "snake_case", "message": "...", "details": {...}}}`
  with 400/413/415/422 for bad input, 404 for a missing resource and 409 for a conflict.
* Long work answers **202** with a job; follow it at `/api/jobs/{id}` or stream
  `/api/jobs/{id}/events` (SSE, resumable with `Last-Event-ID`).
* With `STUDIO_TOKEN` set, send `Authorization: Bearer <token>`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    storage = Storage(settings.workspace_dir)
    storage.ensure()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        storage.empty_trash()
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.web_threads
        yield
        app.state.streams.close()

    app = FastAPI(
        title="AI Studio",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=OPENAPI_TAGS,
        lifespan=lifespan,
        # FastAPI's own docs pages load Swagger UI from a CDN; ours serve the vendored copy.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.storage = storage
    app.state.engine = engine_for(
        settings.resolved_database_url, busy_seconds=settings.db_busy_seconds
    )
    app.state.streams = StreamHub(
        app.state.engine, poll_seconds=settings.poll_seconds, max_streams=settings.max_streams
    )

    app.include_router(api_router)
    app.include_router(api_router_docs)
    app.include_router(web_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_handlers(app)

    # Outermost last: the host check runs first, then security (CSRF, auth, size limits).
    app.add_middleware(SecurityMiddleware, settings=settings)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    return app
