"""A form pressed before htmx has bound it (the deferred scripts still loading) is held and
sent by htmx once it is ready, instead of the browser's native submit: a plain reload with
the fields in the address that dropped what the user asked for."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect

from tests.support.studio import LiveStudio

pytestmark = [pytest.mark.browser]

HTMX = re.compile(r"/vendor/htmx-[^/]*\.min\.js")  # the core and its extension


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[LiveStudio]:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    live = LiveStudio(tmp_path / "workspace", extra_env={"STUDIO_IMPORT_ROOTS": str(incoming)})
    yield live
    live.stop()


def test_a_form_sent_before_htmx_is_ready_goes_through_htmx(page: Page, studio: LiveStudio) -> None:
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route(HTMX, hold)
    page.goto("/weights", wait_until="commit")
    page.get_by_test_id("weights-model").select_option("resnet18")
    page.get_by_test_id("weights-path").fill("nowhere.pth")
    page.get_by_test_id("weights-submit").click()
    page.wait_for_timeout(300)  # a native submit would be navigating by now
    assert held, "htmx was not requested"
    assert "?" not in page.url
    for route in held:
        route.continue_()
    page.unroute(HTMX)
    expect(page.locator("#weights-error")).to_contain_text("nowhere.pth")
    assert page.url == f"{studio.url}/weights"
