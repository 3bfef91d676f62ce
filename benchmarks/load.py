"""The studio under a dashboard's load while it trains (issue 19's goal).

One command: starts `python -m app` (worker pool included) on a fresh workspace, imports the
digits sample, trains a baseline experiment without load to measure its epoch time, then
starts a longer training and, while it runs, holds `--streams` open event streams on it and
runs `--browsers` clients that browse pages, image lists and thumbnails (a request, then
0.5-1.5 s of think time) for `--seconds`, while a probe in a process of its own asks
/api/health every 0.25 s. It reports errors, latency percentiles, the
training's epoch time under load against the baseline, and the machine's load average.

    .venv/bin/python benchmarks/load.py                # SQLite in the workspace
    .venv/bin/python benchmarks/load.py --postgres     # a throwaway PostgreSQL server

Goal: 0 errors, /api/health p95 < 100 ms, page p95 < 1 s, epoch time <= 1.5x unloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.pg import PostgresServer, find_pg_bin, free_port  # noqa: E402

TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_delay(pid: int) -> float:
    """Seconds the process's threads have waited for a CPU while runnable (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def start_studio(workspace: Path, database_url: str | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "STUDIO_WORKSPACE": str(workspace), "STUDIO_PORT": str(port)}
    env.pop("STUDIO_DATABASE_URL", None)
    if database_url:
        env["STUDIO_DATABASE_URL"] = database_url
    log = open(workspace.parent / "studio.log", "ab")  # noqa: SIM115 - lives as long as the studio
    process = subprocess.Popen(
        [sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("the studio did not start; see studio.log")


def wait_job(api: httpx.Client, job_id: int, timeout: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/api/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return dict(job)
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id}")


def prepare(api: httpx.Client) -> tuple[int, int]:
    """A digits project with a stratified split; returns (project id, split id)."""
    project = api.post("/api/projects", json={"name": "Load", "task_type": "classification"})
    pid = project.json()["id"]
    started = api.post(f"/api/projects/{pid}/samples/digits").json()
    assert wait_job(api, started["job"]["id"])["status"] == "succeeded"
    split = api.post(
        f"/api/projects/{pid}/splits",
        json={"name": "main", "strategy": "stratified", "seed": 42},
    ).json()
    return pid, split["id"]


def train(api: httpx.Client, pid: int, split_id: int, name: str, epochs: int) -> tuple[int, int]:
    body = {"name": name, "split_id": split_id, "epochs": epochs, "warmup_epochs": 0}
    experiment = api.post(f"/api/projects/{pid}/experiments", json=body)
    assert experiment.status_code == 201, experiment.text
    eid = experiment.json()["id"]
    started = api.post(f"/api/projects/{pid}/experiments/{eid}/train")
    assert started.status_code == 202, started.text
    return eid, started.json()["job"]["id"]


def epoch_events(api: httpx.Client, job_id: int) -> list[tuple[float, float]]:
    """(end time, seconds) of each finished epoch, from the job's metric events."""
    out = []
    with api.stream("GET", f"/api/jobs/{job_id}/events", timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: ") and '"kind": "epoch"' in line:
                event = json.loads(line[6:])
                ended = datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
                out.append((ended, float(event["payload"]["seconds"])))
    return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def load(
    url: str, pid: int, job_id: int, streams: int, browsers: int, seconds: float
) -> dict[str, Any]:
    errors: list[str] = []
    latency: dict[str, list[float]] = {"health": [], "page": [], "api": [], "thumbnail": []}
    stream_messages = [0] * streams
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=streams + browsers + 10, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        images = (await client.get(f"/api/projects/{pid}/images?page_size=500")).json()["items"]
        ids = [i["id"] for i in images]

        async def stream(index: int) -> None:
            try:
                async with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
                    if response.status_code != 200:
                        errors.append(f"stream {response.status_code}")
                        return
                    async for line in response.aiter_lines():
                        if line.startswith("id:"):
                            stream_messages[index] += 1
                        if stop.is_set():
                            return
                    if not stop.is_set():
                        errors.append("stream ended early")
            except httpx.HTTPError as exc:
                if not stop.is_set():
                    errors.append(f"stream {type(exc).__name__}")

        async def timed(kind: str, path: str) -> None:
            started = time.perf_counter()
            try:
                response = await client.get(path)
                if response.status_code >= 400:
                    errors.append(f"{response.status_code} {path}")
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__} {path}")
            latency[kind].append(time.perf_counter() - started)

        async def browser(seed: int) -> None:
            rng = random.Random(seed)
            pages = [f"/projects/{pid}", f"/projects/{pid}/dataset", "/jobs", f"/jobs/{job_id}"]
            while not stop.is_set():
                roll = rng.random()
                if roll < 0.4:
                    await timed("page", rng.choice(pages))
                elif roll < 0.7:
                    page = rng.randint(1, 30)
                    await timed("api", f"/api/projects/{pid}/images?page={page}&page_size=60")
                else:
                    await timed(
                        "thumbnail", f"/api/projects/{pid}/images/{rng.choice(ids)}/thumbnail"
                    )
                await asyncio.sleep(rng.uniform(0.5, 1.5))

        stream_tasks = [asyncio.create_task(stream(i)) for i in range(streams)]
        await asyncio.sleep(2)  # streams connected before the clock starts
        window = (time.time(), 0.0)
        others = [asyncio.create_task(browser(i)) for i in range(browsers)]
        probe = subprocess.Popen(
            [sys.executable, __file__, "--probe", url, "--seconds", str(seconds)],
            stdout=subprocess.PIPE,
        )
        await asyncio.sleep(seconds)
        window = (window[0], time.time())
        stop.set()
        await asyncio.gather(*others)
        probed = json.loads((await asyncio.to_thread(probe.communicate))[0])
        latency["health"] = probed["latencies"]
        errors.extend(probed["errors"])
        for task in stream_tasks:
            task.cancel()
        await asyncio.gather(*stream_tasks, return_exceptions=True)
    silent = sum(1 for n in stream_messages if n == 0)
    if silent:
        errors.append(f"{silent} streams received no event")
    return {
        "window": window,
        "errors": errors,
        "requests": {k: len(v) for k, v in latency.items()},
        "p50_ms": {k: _ms(pct(v, 0.5)) for k, v in latency.items()},
        "p95_ms": {k: _ms(pct(v, 0.95)) for k, v in latency.items()},
        "stream_events_median": statistics.median(stream_messages) if stream_messages else 0,
    }


def probe(url: str, seconds: float) -> int:
    """Ask /api/health every 0.25 s from a process of its own, as a monitor would.

    In the load clients' event loop the probe's figure included that loop's own delay with
    250 busy connections, not only the studio's answer time."""
    latencies: list[float] = []
    errors: list[str] = []
    end = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < end:
            started = time.perf_counter()
            try:
                response = client.get("/api/health")
                if response.status_code >= 400:
                    errors.append(f"{response.status_code} /api/health")
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__} /api/health")
            latencies.append(time.perf_counter() - started)
            time.sleep(0.25)
    print(json.dumps({"latencies": latencies, "errors": errors}))
    return 0


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--browsers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--baseline-epochs", type=int, default=4)
    parser.add_argument("--postgres", action="store_true", help="run on a throwaway PostgreSQL")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--probe", metavar="URL", help=argparse.SUPPRESS)  # the health probe
    args = parser.parse_args()
    if args.probe:
        return probe(args.probe, args.seconds)

    server = None
    database_url = None
    if args.postgres:
        bindir = find_pg_bin()
        if bindir is None:
            print("PostgreSQL server binaries not found", file=sys.stderr)
            return 2
        server = PostgresServer(bindir)
        server.start()
        database_url = server.url(server.create_database())
    folder = Path(tempfile.mkdtemp(prefix="studio-load-"))
    process, url = start_studio(folder / "workspace", database_url)
    report: dict[str, Any] = {
        "database": "postgresql" if args.postgres else "sqlite",
        "cores": os.cpu_count(),
        "uptime_before": uptime(),
    }
    try:
        with httpx.Client(base_url=url, timeout=60) as api:
            pid, split_id = prepare(api)
            _, base_job = train(api, pid, split_id, "baseline", args.baseline_epochs)
            assert wait_job(api, base_job)["status"] == "succeeded"
            baseline = [s for _, s in epoch_events(api, base_job)][1:]  # epoch 1 warms up
            epochs = int(args.seconds / max(0.5, statistics.median(baseline))) + 6
            eid, job_id = train(api, pid, split_id, "under load", epochs)
            while (api.get(f"/api/jobs/{job_id}").json()["progress"] or 0) < 1.05 / epochs:
                time.sleep(0.5)  # the first epoch (start-up, warm-up) ends before the load
            web_cpu, own_cpu, clock = cpu_seconds(process.pid), time.process_time(), time.time()
            web_wait = run_delay(process.pid)
            result = asyncio.run(load(url, pid, job_id, args.streams, args.browsers, args.seconds))
            elapsed = time.time() - clock
            result["cpu_share"] = {  # of one core, while loaded (clients: this process)
                "web_process": round((cpu_seconds(process.pid) - web_cpu) / elapsed, 2),
                "load_clients": round((time.process_time() - own_cpu) / elapsed, 2),
                # > 0 means the web process was ready to run but waited for a CPU (contention)
                "web_waiting_for_cpu": round((run_delay(process.pid) - web_wait) / elapsed, 2),
            }
            api.post(f"/api/projects/{pid}/experiments/{eid}/stop")
            wait_job(api, job_id)
            start, end = result.pop("window")
            loaded = [
                s for ended, s in epoch_events(api, job_id) if ended - s >= start and ended <= end
            ]
        report.update(result)
        base, under = statistics.median(baseline), statistics.median(loaded) if loaded else None
        report["epoch_seconds"] = {
            "unloaded_median": round(base, 2),
            "loaded_median": round(under, 2) if under else None,
            "loaded_epochs": len(loaded),
            "ratio": round(under / base, 2) if under else None,
        }
    finally:
        report["uptime_after"] = uptime()
        process.terminate()
        process.wait(timeout=60)
        if server is not None:
            server.stop()
    print(json.dumps(report, indent=2))
    p95 = report["p95_ms"]
    ok = (
        not report["errors"]
        and (p95["health"] or 1e9) < 100
        and (p95["page"] or 1e9) < 1000
        and (report["epoch_seconds"]["ratio"] or 1e9) <= 1.5
    )
    print(
        f"\n{report['database']}: errors {len(report['errors'])} · health p95 {p95['health']} ms"
        f" · page p95 {p95['page']} ms · api p95 {p95['api']} ms · thumbnail p95"
        f" {p95['thumbnail']} ms · epoch {report['epoch_seconds']['ratio']}x unloaded"
        f" · goal {'met' if ok else 'NOT met'}\nload: {report['uptime_before']} → "
        f"{report['uptime_after']}"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
