"""The per-project navigation: each feature's web module adds its page here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NavItem:
    key: str
    title: str
    path: str  # relative to /projects/{id}; "" is the project's own page
    order: int


PROJECT_PAGES: dict[str, NavItem] = {}


def register_project_page(key: str, title: str, path: str, order: int) -> None:
    PROJECT_PAGES[key] = NavItem(key=key, title=title, path=path, order=order)


def project_pages() -> list[NavItem]:
    return sorted(PROJECT_PAGES.values(), key=lambda item: item.order)


register_project_page("overview", "Overview", "", 0)
