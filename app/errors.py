"""StudioError: the one exception family services raise; handlers turn it into HTTP answers."""

from __future__ import annotations

from typing import Any


class StudioError(Exception):
    """A failure the user can act on: a stable code, an HTTP status and a sentence of advice."""

    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(StudioError):
    status = 400
    code = "bad_request"


class NotFound(StudioError):
    status = 404
    code = "not_found"


class Conflict(StudioError):
    status = 409
    code = "conflict"


class TooLarge(StudioError):
    status = 413
    code = "too_large"


class UnsupportedMedia(StudioError):
    status = 415
    code = "unsupported_media_type"


class Invalid(StudioError):
    status = 422
    code = "invalid"


class Unauthorized(StudioError):
    status = 401
    code = "unauthorized"


class Forbidden(StudioError):
    status = 403
    code = "forbidden"


def not_found(kind: str, ident: object) -> NotFound:
    """The standard 404 for a missing row, e.g. `not_found("project", 3)`."""
    return NotFound(f"{kind.capitalize()} {ident} does not exist.", code=f"{kind}_not_found")
