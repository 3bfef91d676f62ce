"""Pages under their Content-Security-Policy: no inline script, no eval, no framing; the
interactive parts (Alpine, htmx, Swagger UI) still work. Every browser test also fails on a
CSP violation or an Alpine expression error (conftest.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveStudio

pytestmark = [pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[2]


def test_templates_have_no_inline_scripts_or_handlers() -> None:
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template
        assert not re.search(r"\son[a-z]+\s*=", text), template
        assert "hx-on" not in text and "js:" not in text, template


def test_pages_carry_the_policy_and_alpine_works_under_it(page: Page, studio: LiveStudio) -> None:
    response = page.goto("/")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert (
        "unsafe-eval" not in policy and "'unsafe-inline'" not in policy.split("style-src-attr")[0]
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    page.get_by_test_id("new-project").click()  # an Alpine component (projectList)
    expect(page.locator("input[name=name]")).to_be_focused()
    page.get_by_placeholder("e.g. Leaf diseases").fill("Under CSP")
    page.get_by_test_id("create-project").click()  # htmx
    expect(page.locator(".project-card")).to_have_count(1)
    expect(page.get_by_placeholder("e.g. Leaf diseases")).to_be_hidden()
    page.get_by_test_id("rename").click()  # projectCard
    expect(page.locator(".project-card input[name=name]")).to_be_focused()


def test_api_docs_render_without_inline_script(page: Page, studio: LiveStudio) -> None:
    response = page.goto("/docs")
    assert (
        response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    )
    expect(page.locator(".opblock").first).to_be_visible(timeout=20_000)
