"""A live studio (`python -m app`, worker pool included) and a real headless Chromium.

Playwright drives Debian's /usr/bin/chromium through executable_path; `playwright install`
is never run. With STUDIO_REQUIRE_BROWSER=1 (the README's test command) a missing Chromium
is an error, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.studio import LiveStudio

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
    # The pages' Content-Security-Policy: a blocked script, style or eval, or an Alpine
    # expression the CSP build cannot parse, is a failure like a JavaScript error.
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error"
            and ("Content Security Policy" in msg.text or "Alpine" in msg.text)
            else None
        ),
    )
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
