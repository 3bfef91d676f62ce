"""Security middleware: body-size limits, cross-site request checks and token auth."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from urllib.parse import quote, urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings

SESSION_COOKIE = "studio_session"
# Pages load scripts and styles from this studio only: no inline script (so no hash is
# needed), no eval (htmx allowEval off, Alpine's CSP build), no framing. Inline style
# attributes stay allowed for server-rendered widths (progress bars, bars in tables).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
PUBLIC_PREFIXES = ("/static/", "/login", "/api/health")


def session_value(token: str) -> str:
    """The login cookie: an HMAC of the token, so the token itself never sits in a cookie."""
    return hmac.new(token.encode(), b"ai-studio-session-v1", hashlib.sha256).hexdigest()


async def _send_error(send: Send, status: int, code: str, message: str, *, html: bool) -> None:
    if html:
        body = f"<h1>{status}</h1><p>{message}</p>".encode()
        content_type = b"text/html; charset=utf-8"
    else:
        body = json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()
        content_type = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


class SecurityMiddleware:
    """One pure-ASGI layer for the checks every request passes, in order:

    1. cross-site unsafe requests are refused (Sec-Fetch-Site, else Origin vs Host);
    2. with STUDIO_TOKEN set, /api needs the bearer token or the login cookie, pages the cookie;
    3. request bodies are capped (uploads at STUDIO_MAX_UPLOAD_MB, other bodies at
       STUDIO_MAX_JSON_KB), by Content-Length up front and by counting while streaming;
    4. every response carries the security headers (Content-Security-Policy, nosniff, no
       framing), whatever produced it.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        token = settings.token.get_secret_value() if settings.token else None
        self.token = token
        self.cookie = session_value(token) if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send)
        headers = Headers(scope=scope)
        path: str = scope["path"]
        is_api = path.startswith("/api/")
        method: str = scope["method"]

        if method in UNSAFE_METHODS and _cross_site(headers):
            await _send_error(
                send,
                403,
                "cross_site_request",
                "Cross-site requests may not change data; use the studio's own pages or the API "
                "without an Origin header.",
                html=not is_api,
            )
            return

        if (
            self.token
            and not path.startswith(PUBLIC_PREFIXES)
            and not self._authorized(headers, is_api)
        ):
            if is_api or path in {"/openapi.json"}:
                await _send_error(
                    send,
                    401,
                    "unauthorized",
                    "Send 'Authorization: Bearer <STUDIO_TOKEN>' or log in first.",
                    html=False,
                )
            else:
                target = quote(path, safe="/")
                hx = headers.get("hx-request") == "true"
                status = 401 if hx else 303
                response_headers = [(b"location", f"/login?next={target}".encode())]
                if hx:
                    response_headers.append((b"hx-redirect", f"/login?next={target}".encode()))
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [*response_headers, (b"content-length", b"0")],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
            return

        limit = self._limit(headers)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_error(
                send, 413, "request_too_large", self._limit_message(limit), html=not is_api
            )
            return

        received = 0
        exceeded = False
        answered = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def answer_too_large() -> None:
            nonlocal answered
            if not answered:
                answered = True
                await _send_error(
                    send, 413, "request_too_large", self._limit_message(limit), html=not is_api
                )

        async def guarded_send(message: Message) -> None:
            # Body parsers may turn our exception into their own 400; the 413 wins.
            if exceeded:
                await answer_too_large()
                return
            await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, counting_receive, guarded_send)
        if exceeded:
            await answer_too_large()

    def _limit(self, headers: Headers) -> int:
        content_type = headers.get("content-type", "")
        if content_type.startswith("multipart/form-data") or content_type in {
            "application/zip",
            "application/octet-stream",
            "application/x-zip-compressed",
        }:
            return self.settings.max_upload_bytes
        return self.settings.max_json_kb * 1024

    @staticmethod
    def _limit_message(limit: int) -> str:
        if limit >= 1024 * 1024:
            size = f"{limit / (1024 * 1024):.0f} MB"
        else:
            size = f"{limit / 1024:.0f} KB"
        return f"The request body is larger than the {size} this endpoint accepts."

    def _authorized(self, headers: Headers, is_api: bool) -> bool:
        assert self.token is not None and self.cookie is not None
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return hmac.compare_digest(auth[7:].strip().encode(), self.token.encode())
        cookie = _cookie(headers.get("cookie", ""), SESSION_COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(), self.cookie.encode())


def _with_security_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {key.lower() for key, _ in headers}
            headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _cross_site(headers: Headers) -> bool:
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in {"same-origin", "none"}
    origin = headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    host = headers.get("host", "")
    return urlsplit(origin).netloc.lower() != host.lower()
