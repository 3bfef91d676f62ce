"""Login page for STUDIO_TOKEN deployments: the token in exchange for an HttpOnly cookie."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse

from app.config import Settings
from app.deps import get_settings
from app.security import SESSION_COOKIE, session_value
from app.templating import render

router = APIRouter()


def _safe_next(value: str) -> str:
    """Only same-site paths; never an absolute URL (open redirect)."""
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return "/"
    return value


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "pages/login.html", next=_safe_next(next), error=None)


@router.post("/login")
def login(
    request: Request,
    token: str = Form(""),
    next: str = Form("/"),
    settings: Settings = Depends(get_settings),
) -> Response:
    expected = settings.token.get_secret_value() if settings.token else ""
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        return render(
            request,
            "pages/login.html",
            status_code=401,
            next=_safe_next(next),
            error="That token is not the studio's STUDIO_TOKEN.",
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_value(expected),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=30 * 86400,
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
