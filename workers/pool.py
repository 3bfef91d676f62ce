"""`python -m workers.pool`: the supervisor that drains the job queue into worker processes.

Each tick it reaps finished workers, forwards cancel requests as signals, claims queued jobs
while a lane has free slots, and (every few seconds) sweeps running jobs whose worker is
gone. Workers run in their own process group, so a worker and everything it started can be
signalled together; a worker that outlives a pool restart is adopted by the next pool.

It also keeps the resident predictor (`python -m workers.predictor`) running while there are
light slots: started with the pool, restarted with backoff when it dies (its job in hand is
reconciled like a dead worker's), stopped with the pool. Predict jobs go to their own queue,
which the predictor claims within tens of milliseconds; a light slot takes one over at once
while the predictor is down, or once it has waited STUDIO_PREDICT_FALLBACK_SECONDS (the
predictor is busy or stuck), so predictions complete without it, only slower.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.config import Settings, get_settings
from app.db import engine_for, utcnow
from app.faults import scrub
from app.models import Job, JobQueue, JobStatus
from app.services import imports as import_service
from app.services import jobs as job_service
from app.storage import Storage

log = logging.getLogger("workers.pool")

SWEEP_SECONDS = 5.0
PREDICTOR_BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
PREDICTOR_STABLE_SECONDS = 30.0  # a predictor that lived this long resets the backoff


@dataclass
class Child:
    job_id: int
    queue: str
    process: subprocess.Popen[bytes]
    term_sent_at: float | None = None
    killed: bool = False


def worker_alive(pid: int, job_id: int) -> bool:
    """Is `pid` still the worker of this job? (Guards against a recycled pid.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True  # not Linux: trust the heartbeat instead
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    if b"workers.predictor" in args:
        return True  # the resident predictor runs many jobs; its heartbeat tells if it is stuck
    if b"workers.run" not in args:
        return False
    return str(job_id).encode() in args


def is_predictor(pid: int) -> bool:
    try:
        return b"workers.predictor" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _kill_leftovers(pid: int) -> None:
    """SIGKILL what is left of a dead worker's process group (helpers it started).

    Only while the leader's pid is unused: a process group keeps its number reserved, so
    then the group can only be the dead worker's; a live pid may be someone else now."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        _signal_group(pid, signal.SIGKILL)
    except PermissionError:
        pass


class Supervisor:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or engine_for(settings.resolved_database_url)
        self.storage = Storage(settings.workspace_dir)
        self.children: dict[int, Child] = {}
        self.adopted_term: dict[int, float] = {}
        self.slots = {
            JobQueue.compute.value: settings.workers,
            JobQueue.light.value: settings.light_workers,
        }
        self.stopping = False
        self._last_sweep = 0.0
        # Set by `python -m app`: when the web process dies (even by SIGKILL) the pool is
        # re-parented, notices, and stops its workers instead of running on unsupervised.
        parent = os.environ.get("STUDIO_POOL_PARENT_PID", "")
        self.parent_pid = int(parent) if parent.isdigit() else None
        cores = os.cpu_count() or 1
        self.threads_per_worker = max(1, cores // max(1, settings.workers))
        self.predictor_enabled = settings.resident_predictor and settings.light_workers > 0
        self.predictor: subprocess.Popen[bytes] | None = None
        self.predictor_started = 0.0
        self.predictor_failures = 0
        self.predictor_next_start = 0.0

    # --- lifecycle ------------------------------------------------------------------------

    def run_forever(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        log.info("worker pool up: %s", self.slots)
        self.sweep()
        self.supervise_predictor()
        while not self.stopping:
            try:
                self.tick()
            except Exception:  # the pool must survive a database hiccup
                log.exception("pool tick failed")
            time.sleep(self.settings.poll_seconds)
        self.shutdown()

    def _on_stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def tick(self) -> None:
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            log.warning("the studio process %s is gone; stopping the pool", self.parent_pid)
            self.stopping = True
            return
        self.reap()
        self.supervise_predictor()
        self.forward_cancels()
        if time.monotonic() - self._last_sweep >= SWEEP_SECONDS:
            self.sweep()
        self.fill()

    # --- steps ----------------------------------------------------------------------------

    def fill(self) -> None:
        for lane, slots in self.slots.items():
            while sum(1 for c in self.children.values() if c.queue == lane) < slots:
                with Session(self.engine, expire_on_commit=False) as session:
                    job = None
                    if lane == JobQueue.light.value:
                        job = self._claim_predict_fallback(session)
                    if job is None:
                        job = job_service.claim_next_job(session, queue=lane)
                if job is None:
                    break
                self.spawn(job, lane)

    def _claim_predict_fallback(self, session: Session) -> Job | None:
        """A predict job for a light slot: any while the predictor is down, else only one the
        predictor has left waiting for predict_fallback_seconds."""
        wait = self.settings.predict_fallback_seconds if self.predictor_alive() else 0.0
        job = job_service.claim_next_job(
            session,
            queue=JobQueue.predict.value,
            queued_before=utcnow() - timedelta(seconds=wait),
        )
        if job is not None:
            log.info(
                "predict job %s runs in a worker (resident predictor %s)",
                job.id,
                "busy" if wait else "down",
            )
        return job

    # --- the resident predictor -------------------------------------------------------------

    def predictor_alive(self) -> bool:
        return self.predictor is not None and self.predictor.poll() is None

    def supervise_predictor(self) -> None:
        if not self.predictor_enabled or self.stopping:
            return
        now = time.monotonic()
        if self.predictor is not None:
            code = self.predictor.poll()
            lived = now - self.predictor_started
            if code is None:
                if lived >= PREDICTOR_STABLE_SECONDS:
                    self.predictor_failures = 0
                return
            pid = self.predictor.pid
            self.predictor = None
            if lived >= PREDICTOR_STABLE_SECONDS:
                self.predictor_failures = 0
            delay = PREDICTOR_BACKOFF[min(self.predictor_failures, len(PREDICTOR_BACKOFF) - 1)]
            self.predictor_failures += 1
            self.predictor_next_start = now + delay
            log.warning(
                "resident predictor (pid %s) exited with %s after %.1f s; restart in %.1f s",
                pid,
                code,
                lived,
                delay,
            )
            self._reconcile_predictor_jobs(pid, code)
        if now >= self.predictor_next_start:
            self.start_predictor()

    def _reconcile_predictor_jobs(self, pid: int, code: int) -> None:
        with Session(self.engine) as session:
            mine = [
                j.id
                for j in job_service.running_jobs(session)
                if j.pid == pid and j.queue == JobQueue.predict.value
            ]
        for job_id in mine:
            assert job_id is not None
            self.reconcile(job_id, code)

    def start_predictor(self) -> None:
        env = {**os.environ, **self.settings.child_env()}
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", STUDIO_WORKER_THREADS="1")
        env["STUDIO_PREDICTOR_PARENT_PID"] = str(os.getpid())
        with open(self.settings.workspace_dir / "predictor.log", "ab") as out:
            self.predictor = subprocess.Popen(
                [sys.executable, "-m", "workers.predictor"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.predictor_started = time.monotonic()
        log.info("resident predictor started as pid %s", self.predictor.pid)

    def stop_predictor(self, deadline: float) -> None:
        if self.predictor is None:
            return
        _signal_group(self.predictor.pid, signal.SIGTERM)
        try:
            self.predictor.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(self.predictor.pid, signal.SIGKILL)
            self.predictor.wait()
        pid, code = self.predictor.pid, self.predictor.returncode
        self.predictor = None
        self._reconcile_predictor_jobs(pid, code)

    # --- workers --------------------------------------------------------------------------

    def spawn(self, job: Job, lane: str) -> None:
        assert job.id is not None
        log_dir = self.settings.workspace_dir / "jobs" / str(job.id)
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings.child_env()}
        threads = str(self.threads_per_worker)
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, STUDIO_WORKER_THREADS=threads)
        with open(log_dir / f"worker-{job.attempt}.log", "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "workers.run", str(job.id)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        # Workers yield the CPU to request handling: on a busy machine a page or a health
        # check waits for a training step only when the web process has nothing to do.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, process.pid, self.settings.worker_nice)
        self.children[job.id] = Child(job_id=job.id, queue=lane, process=process)
        with Session(self.engine) as session:
            job_service.set_pid(session, job_id=job.id, pid=process.pid)
        log.info("job %s (%s) started as pid %s", job.id, job.kind, process.pid)

    def reap(self) -> None:
        reaped = False
        for job_id, child in list(self.children.items()):
            code = child.process.poll()
            if code is None:
                continue
            del self.children[job_id]
            # Whatever the worker started (an import's image helpers) ends with it: they
            # share its process group even after they were re-parented.
            _kill_leftovers(child.process.pid)
            self.reconcile(job_id, code)
            reaped = True
        if reaped:
            self.recover_imports()

    def recover_imports(self) -> None:
        """Close imports whose worker died and remove the files they had moved in."""
        with Session(self.engine, expire_on_commit=False) as session:
            closed = import_service.recover_abandoned(session, self.storage)
        if closed:
            log.info("closed %d abandoned import(s)", closed)

    def reconcile(self, job_id: int, code: int) -> None:
        """Give a job whose worker exited without writing a final status the right one."""
        with Session(self.engine, expire_on_commit=False) as session:
            job = session.get(Job, job_id)
            if job is None or job.status != JobStatus.running.value:
                return
            if job.cancel_requested:
                status, message = JobStatus.cancelled, "Cancelled (worker stopped)"
            elif code < 0:
                status = JobStatus.interrupted
                message = f"Worker was killed by signal {-code}"
            else:
                status = JobStatus.failed
                message = f"Worker exited with code {code} without reporting a result"
            error = None if status != JobStatus.failed else message + self._log_tail(job)
            job_service.finish_job(
                session, job_id=job_id, status=status, message=message, error=error, exit_code=code
            )
        log.info("job %s ended as %s (exit %s)", job_id, status.value, code)

    def _log_tail(self, job: Job) -> str:
        path = self.settings.workspace_dir / "jobs" / str(job.id) / f"worker-{job.attempt}.log"
        try:
            tail = path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""
        tail = "\n".join(scrub(line, self.settings.workspace_dir) for line in tail.splitlines())
        return f"\n--- last lines of the worker log ---\n{tail}" if tail.strip() else ""

    def forward_cancels(self) -> None:
        now = time.monotonic()
        grace = self.settings.cancel_grace_seconds
        with Session(self.engine) as session:
            wanted = {j.id: j for j in job_service.running_jobs(session) if j.cancel_requested}
        for job_id, job in wanted.items():
            assert job_id is not None
            child = self.children.get(job_id)
            if child is not None:
                pid = child.process.pid
                if child.term_sent_at is None:
                    _signal_group(pid, signal.SIGTERM)
                    child.term_sent_at = now
                elif not child.killed and now - child.term_sent_at > grace:
                    log.warning("job %s ignored SIGTERM for %.0f s; killing it", job_id, grace)
                    _signal_group(pid, signal.SIGKILL)
                    child.killed = True
            elif job.pid is not None and is_predictor(job.pid):
                continue  # never signal the resident predictor for one job (it takes ms)
            elif job.pid is not None and worker_alive(job.pid, job_id):
                sent = self.adopted_term.get(job_id)
                if sent is None:
                    _signal_group(job.pid, signal.SIGTERM)
                    self.adopted_term[job_id] = now
                elif now - sent > grace:
                    _signal_group(job.pid, signal.SIGKILL)

    def sweep(self) -> None:
        """Running jobs that no live worker owns become interrupted (start-up and periodic);
        then the imports among them are closed and their moved files removed."""
        self._last_sweep = time.monotonic()
        with Session(self.engine, expire_on_commit=False) as session:
            running = job_service.running_jobs(session)
            stale = {
                j.id
                for j in job_service.stale_running_jobs(
                    session, stale_after=self.settings.stale_after_seconds
                )
            }
        for job in running:
            assert job.id is not None
            if job.id in self.children:
                continue
            if job.pid is None:
                # Claimed but never started (a pool died between claim and spawn).
                if job.id in stale:
                    self._interrupt(job.id, "Worker never started")
                continue
            if not worker_alive(job.pid, job.id):
                self._interrupt(job.id, "Worker process is gone")
                _kill_leftovers(job.pid)  # helpers it left in its group
            elif job.id in stale:
                self._interrupt(job.id, "Worker stopped sending heartbeats")
                _signal_group(job.pid, signal.SIGKILL)
        self.recover_imports()

    def _interrupt(self, job_id: int, message: str) -> None:
        with Session(self.engine) as session:
            if job_service.finish_job(
                session, job_id=job_id, status=JobStatus.interrupted, message=message
            ):
                log.warning("job %s interrupted: %s", job_id, message)

    def shutdown(self) -> None:
        """Ask every worker to stop at a safe point (they record `interrupted`), then kill."""
        for child in self.children.values():
            _signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.cancel_grace_seconds
        self.stop_predictor(deadline)
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.1)
        for child in self.children.values():
            _signal_group(child.process.pid, signal.SIGKILL)
            child.process.wait()
        self.reap()
        log.info("worker pool stopped")


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s pool %(levelname)s %(name)s: %(message)s"
    )
    Supervisor(get_settings()).run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
