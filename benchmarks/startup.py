"""Server start-up: seconds from `python -m app` to the first 200 on /api/health.

Also reports the web process's resident memory once ready and whether any ML library was
imported there (the layering promises it never is). Run: .venv/bin/python benchmarks/startup.py
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ML_MODULES = ("torch", "torchvision", "lightning", "transformers", "onnxruntime", "onnx")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def loaded_ml_modules(pid: int) -> list[str]:
    """ML libraries mapped into the process: their shared objects show up in /proc/pid/maps."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [name for name in ML_MODULES if f"/site-packages/{name}/" in maps]


def one_start(workspace: Path, *, fresh_db: bool) -> dict[str, float | list[str]]:
    port = free_port()
    env = {
        **os.environ,
        "STUDIO_WORKSPACE": str(workspace),
        "STUDIO_PORT": str(port),
        "STUDIO_START_POOL": "false",
    }
    if fresh_db:
        (workspace / "studio.db").unlink(missing_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/health"
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"studio exited with {process.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.02)
        elapsed = time.perf_counter() - started
        return {
            "seconds": elapsed,
            "rss_mb": rss_mb(process.pid),
            "ml_modules": loaded_ml_modules(process.pid),
        }
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        first = one_start(workspace, fresh_db=True)
        warm = [one_start(workspace, fresh_db=False) for _ in range(args.runs)]
    seconds = [float(run["seconds"]) for run in warm]  # type: ignore[arg-type]
    result = {
        "first_start_with_migrations_s": round(float(first["seconds"]), 3),  # type: ignore[arg-type]
        "start_median_s": round(statistics.median(seconds), 3),
        "start_max_s": round(max(seconds), 3),
        "web_rss_mb": round(float(warm[-1]["rss_mb"]), 1),  # type: ignore[arg-type]
        "ml_modules_in_web_process": warm[-1]["ml_modules"],
        "target_s": 2.0,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
