"""Live job streams: one poller per web process fans job events out to every SSE client.

A stream that polled the database itself held a pooled connection for its whole life, and
about fifteen open dashboards stalled every page. Here a stream costs a coroutine: the hub
polls the jobs somebody watches once per interval in one short session, keeps their recent
events (already formatted as SSE messages) in memory and wakes the subscribers. Clients that
start further back than the cache reads the gap in short sessions of their own. Beyond
`STUDIO_MAX_STREAMS` open streams a new one is answered 503 with Retry-After, and a stream
ends as soon as its client disconnects or the studio shuts down.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from app.errors import StudioError
from app.models import TERMINAL_STATUSES, Job, JobEvent, JobEventRead, JobRead
from app.services.events import list_events
from app.sse import KEEPALIVE_SECONDS, SSE_HEADERS, format_event

log = logging.getLogger("app.streams")

CACHE_EVENTS = 2000  # per watched job; older events are read from the database on demand
FINISHED_GRACE_SECONDS = 5.0  # a finished job whose final event never came still ends
RETRY_AFTER_SECONDS = 5


class StreamsFull(StudioError):
    status = 503
    code = "too_many_streams"


def event_message(event: JobEvent) -> str:
    """The SSE message for one job event (the same bytes for every subscriber)."""
    body = JobEventRead.model_validate(event, from_attributes=True)
    return format_event(body.model_dump(mode="json"), event=event.type, id=event.seq)


@dataclass
class Watch:
    """What the hub knows about one watched job."""

    job_id: int
    subscribers: int = 0
    loaded: bool = False
    job: JobRead | None = None  # None once loaded: the job does not exist
    floor: int = 0  # events with seq <= floor are not cached
    seqs: list[int] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    final_seq: int | None = None  # seq of the job's terminal status event
    updated: asyncio.Event = field(default_factory=asyncio.Event)
    card: tuple[tuple[Any, ...], str] | None = None

    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else self.floor

    def wake(self) -> None:
        event, self.updated = self.updated, asyncio.Event()
        event.set()

    def add(self, rows: list[tuple[int, str, bool]]) -> None:
        for seq, message, final in rows:
            if seq <= self.last_seq():
                continue
            self.seqs.append(seq)
            self.messages.append(message)
            if final:
                self.final_seq = seq
        if len(self.seqs) > CACHE_EVENTS:
            cut = len(self.seqs) - CACHE_EVENTS
            self.floor = self.seqs[cut - 1]
            del self.seqs[:cut], self.messages[:cut]

    def after(self, cursor: int) -> list[tuple[int, str]]:
        start = bisect.bisect_right(self.seqs, cursor)
        return list(zip(self.seqs[start:], self.messages[start:], strict=True))

    def finished_quietly(self, cursor: int) -> bool:
        """The job ended a while ago and nothing after `cursor` will come any more."""
        job = self.job
        if job is None or job.status not in TERMINAL_STATUSES or job.finished_at is None:
            return False
        age = (datetime.now(UTC) - job.finished_at).total_seconds()
        return age > FINISHED_GRACE_SECONDS and cursor >= self.last_seq()


class StreamHub:
    """The per-process registry of open streams and the poller behind them."""

    def __init__(self, engine: Engine, *, poll_seconds: float, max_streams: int) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.max_streams = max_streams
        self.open_streams = 0
        self.closing = False
        self.watches: dict[int, Watch] = {}
        # When the poller's last query answered (time.monotonic()); /api/health reads it.
        self.database_answered_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()

    def database_answered_within(self, seconds: float) -> bool:
        """Whether the poller's own query reached the database that recently (while streams
        are watched it asks every poll_seconds, so a probe need not ask again)."""
        answered = self.database_answered_at
        return answered is not None and time.monotonic() - answered < seconds

    # --- slots ------------------------------------------------------------------------------

    def _refusal(self) -> StreamsFull | None:
        if self.closing:
            return StreamsFull(
                "The studio is shutting down; reconnect in a few seconds.",
                code="shutting_down",
                details={"retry_after": RETRY_AFTER_SECONDS},
            )
        if self.open_streams >= self.max_streams:
            return StreamsFull(
                f"This studio already serves {self.max_streams} live streams "
                "(STUDIO_MAX_STREAMS); retry later, or poll /api/jobs/{id} instead.",
                details={"retry_after": RETRY_AFTER_SECONDS, "limit": self.max_streams},
            )
        return None

    def check(self) -> None:
        """Refuse early, before any database work, when no slot is free."""
        refusal = self._refusal()
        if refusal is not None:
            raise refusal

    def acquire(self) -> None:
        self.check()
        self.open_streams += 1

    def release(self) -> None:
        self.open_streams -= 1

    def close(self) -> None:
        """Shutdown: end every open stream now (clients reconnect to the next studio)."""
        self.closing = True
        for watch in self.watches.values():
            watch.wake()
        if self._task is not None:
            self._task.cancel()

    # --- watching ---------------------------------------------------------------------------

    def _watch(self, job_id: int) -> Watch:
        watch = self.watches.get(job_id)
        if watch is None:
            watch = self.watches[job_id] = Watch(job_id)
            self._kick.set()
        watch.subscribers += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return watch

    def _unwatch(self, watch: Watch) -> None:
        watch.subscribers -= 1
        if watch.subscribers <= 0:
            self.watches.pop(watch.job_id, None)

    async def _wait(self, watch: Watch, timeout: float) -> bool:
        """Wait for news about the job; False on timeout (time for a keep-alive)."""
        event = watch.updated
        if self.closing:
            return True
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # --- the poller -------------------------------------------------------------------------

    async def _run(self) -> None:
        while self.watches and not self.closing:
            plan = {jid: (w.loaded, w.last_seq()) for jid, w in self.watches.items()}
            try:
                found = await anyio.to_thread.run_sync(self._poll, plan)
                self.database_answered_at = time.monotonic()
            except Exception:  # a busy database must not end the streams; try again
                log.warning("stream poll failed; retrying", exc_info=True)
                found = {}
            for job_id, (job, rows) in found.items():
                watch = self.watches.get(job_id)
                if watch is None:
                    continue
                changed = rows or not watch.loaded or job != watch.job
                watch.loaded, watch.job = True, job
                if not plan[job_id][0] and rows:
                    watch.floor = max(0, rows[0][0] - 1)
                watch.add(rows)
                if changed:
                    watch.wake()
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.poll_seconds)

    def _poll(
        self, plan: dict[int, tuple[bool, int]]
    ) -> dict[int, tuple[JobRead | None, list[tuple[int, str, bool]]]]:
        """One short session for every watched job: its row and its new events."""
        out: dict[int, tuple[JobRead | None, list[tuple[int, str, bool]]]] = {}
        with Session(self.engine) as session:
            jobs = {
                j.id: JobRead.model_validate(j, from_attributes=True)
                for j in session.exec(select(Job).where(col(Job.id).in_(list(plan))))
            }
            for job_id, (loaded, last) in plan.items():
                query = select(JobEvent).where(JobEvent.job_id == job_id)
                if loaded:
                    query = query.where(col(JobEvent.seq) > last).order_by(col(JobEvent.seq))
                    events = list(session.exec(query.limit(CACHE_EVENTS)))
                else:
                    query = query.order_by(col(JobEvent.seq).desc()).limit(CACHE_EVENTS)
                    events = list(session.exec(query))[::-1]
                out[job_id] = (jobs.get(job_id), [_row(e) for e in events])
        return out

    def _backfill(self, job_id: int, cursor: int) -> list[tuple[int, str]]:
        with Session(self.engine) as session:
            events = list_events(session, job_id=job_id, after=cursor)
            return [(e.seq, event_message(e)) for e in events]

    def job_exists(self, job_id: int) -> bool:
        with Session(self.engine) as session:
            return session.get(Job, job_id) is not None

    # --- what subscribers read --------------------------------------------------------------

    async def job_events(self, job_id: int, after: int) -> AsyncIterator[str]:
        """The job's events after `after` as SSE messages, ending after its final status."""
        watch = self._watch(job_id)
        try:
            cursor = after
            yield "retry: 2000\n\n"
            while not self.closing:
                if not watch.loaded:
                    await self._wait(watch, KEEPALIVE_SECONDS)
                    continue
                if cursor < watch.floor:
                    gap = await anyio.to_thread.run_sync(self._backfill, job_id, cursor)
                    for seq, message in gap:
                        yield message
                        cursor = seq
                    if gap:
                        continue
                for seq, message in watch.after(cursor):
                    yield message
                    cursor = seq
                done = watch.job is None or (
                    watch.final_seq is not None and cursor >= watch.final_seq
                )
                if done or watch.finished_quietly(cursor):
                    return
                if not await self._wait(watch, KEEPALIVE_SECONDS):
                    yield ": keep-alive\n\n"
        finally:
            self._unwatch(watch)

    async def job_cards(self, job_id: int, render: Callable[[JobRead], str]) -> AsyncIterator[str]:
        """The rendered job card each time the job row changes; `done` after a final state."""
        watch = self._watch(job_id)
        try:
            last: tuple[Any, ...] | None = None
            yield "retry: 2000\n\n"
            while not self.closing:
                if not watch.loaded:
                    await self._wait(watch, KEEPALIVE_SECONDS)
                    continue
                job = watch.job
                if job is None:
                    return
                state = _card_state(job)
                if state != last:
                    last = state
                    if watch.card is None or watch.card[0] != state:
                        watch.card = (state, format_event(render(job), event="card"))
                    yield watch.card[1]
                    if job.status in TERMINAL_STATUSES:
                        yield format_event(job.status, event="done")
                        return
                if not await self._wait(watch, KEEPALIVE_SECONDS):
                    yield ": keep-alive\n\n"
        finally:
            self._unwatch(watch)


def _row(event: JobEvent) -> tuple[int, str, bool]:
    final = event.type == "status" and event.payload.get("status") in TERMINAL_STATUSES
    return event.seq, event_message(event), final


def _card_state(job: JobRead) -> tuple[Any, ...]:
    detail = json.dumps(job.progress_detail, sort_keys=True, default=str)
    return (job.status, job.progress, job.message, job.cancel_requested, job.error, detail)


class EventStreamResponse(Response):
    """An SSE response that takes a stream slot first (503 + Retry-After when none is free)
    and stops the moment its client disconnects, whatever the server's ASGI version."""

    media_type = "text/event-stream"

    def __init__(
        self, hub: StreamHub, stream: Callable[[], AsyncIterator[str]], status_code: int = 200
    ) -> None:
        self.hub = hub
        self.stream = stream
        self.status_code = status_code
        self.background = None
        self.init_headers(SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self.hub.acquire()
        except StreamsFull as exc:
            await _send_busy(send, exc)
            return
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async with anyio.create_task_group() as group:

                async def pump() -> None:
                    async for chunk in self.stream():
                        await send(
                            {
                                "type": "http.response.body",
                                "body": chunk.encode(),
                                "more_body": True,
                            }
                        )
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    group.cancel_scope.cancel()

                async def listen() -> None:
                    while True:
                        message: Message = await receive()
                        if message["type"] == "http.disconnect":
                            group.cancel_scope.cancel()
                            return

                group.start_soon(pump)
                group.start_soon(listen)
        except OSError:
            pass  # the client went away mid-write
        finally:
            self.hub.release()


async def _send_busy(send: Send, exc: StudioError) -> None:
    body = json.dumps(exc.as_dict()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
