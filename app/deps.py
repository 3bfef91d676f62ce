"""Request-scoped dependencies shared by the API and web routers."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlmodel import Session

from app.config import Settings
from app.storage import Storage
from app.streams import StreamHub


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


def get_streams(request: Request) -> StreamHub:
    hub: StreamHub = request.app.state.streams
    return hub
