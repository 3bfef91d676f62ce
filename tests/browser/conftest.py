"""A live studio (`python -m app`, worker pool included) and a real headless Chromium.

Playwright drives Debian's /usr/bin/chromium through executable_path; `playwright install`
is never run. With STUDIO_REQUIRE_BROWSER=1 (the README's test command) a missing Chromium
is an error, not a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.pg import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


class LiveStudio:
    def __init__(self, workspace: Path, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workspace = workspace
        self.log = workspace.parent / "studio.log"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "STUDIO_WORKSPACE": str(workspace),
            "STUDIO_PORT": str(self.port),
            "STUDIO_JOB_PLUGINS": "tests.jobs.kinds",
            "STUDIO_POLL_SECONDS": "0.2",
            "STUDIO_HEARTBEAT_SECONDS": "1",
            "STUDIO_CANCEL_GRACE_SECONDS": "3",
            "STUDIO_WORKERS": "1",
            "STUDIO_LIGHT_WORKERS": "1",
            **(extra_env or {}),
        }
        env.pop("STUDIO_DATABASE_URL", None)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"studio did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        self.api = httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        self.api.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[LiveStudio]:
    live = LiveStudio(tmp_path / "workspace")
    yield live
    live.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("STUDIO_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} not found (run scripts/system-packages.sh)")
        pytest.skip(f"{CHROMIUM} not found")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, studio: LiveStudio, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=studio.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
