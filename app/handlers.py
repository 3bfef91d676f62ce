"""Exception handlers: one JSON error shape for /api, an error page or fragment for HTML."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import StudioError
from app.faults import RETRY_AFTER_SECONDS, describe
from app.templating import render
from app.validation import api_sentence, describe_errors

log = logging.getLogger("app")
MAX_ID = 2**31 - 1  # the range of the id columns on PostgreSQL (SQLite holds more)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"


def _error_response(
    request: Request, status: int, code: str, message: str, details: dict[str, Any]
) -> Response:
    if _wants_json(request):
        return JSONResponse(
            {"error": {"code": code, "message": message, "details": details}}, status_code=status
        )
    if request.headers.get("hx-request") == "true":
        # htmx: an in-place fragment, swapped into the region the request named (or #flash).
        response = render(
            request,
            "partials/_error.html",
            status_code=status,
            code=code,
            message=message,
            fields=[f for f in details.get("fields", []) if isinstance(f, dict) and f.get("field")],
        )
        response.headers["HX-Retarget"] = request.headers.get("x-error-target", "#flash")
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return render(
        request, "errors/error.html", status_code=status, code=code, message=message, status=status
    )


def _validation_message(errors: list[Any]) -> tuple[str, list[dict[str, str]]]:
    """Plain sentences per field (app/validation.py), the field name kept in front for the API."""
    fields = describe_errors(errors, blank="request")
    return api_sentence(fields), fields


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(StudioError)
    async def studio_error(request: Request, exc: StudioError) -> Response:
        response = _error_response(request, exc.status, exc.code, exc.message, exc.details)
        if "retry_after" in exc.details:
            response.headers["Retry-After"] = str(exc.details["retry_after"])
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        message, fields = _validation_message(list(exc.errors()))
        return _error_response(request, 422, "validation_error", message, {"fields": fields})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        code = codes.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"Nothing at {request.url.path}; see /docs for the endpoints."
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
        response = _error_response(request, exc.status_code, code, message, {})
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    async def out_of_range(request: Request, exc: Exception) -> Response:
        # No row has an id beyond the column's range (SQLite raises OverflowError past
        # 64 bits, PostgreSQL 22003 past 32): a path naming one is simply not there.
        if any(part.isdigit() and int(part) > MAX_ID for part in request.url.path.split("/")):
            message = f"Nothing at {request.url.path}: ids are whole numbers up to {MAX_ID}."
            return _error_response(request, 404, "not_found", message, {})
        return _error_response(
            request,
            422,
            "number_out_of_range",
            f"A number in the request is out of range; ids are whole numbers up to {MAX_ID}.",
            {},
        )

    app.add_exception_handler(OverflowError, out_of_range)

    @app.exception_handler(DataError)
    async def bad_value(request: Request, exc: DataError) -> Response:
        if str(getattr(exc.orig, "sqlstate", "")) == "22003":
            return await out_of_range(request, exc)
        return await machine_fault(request, exc)

    async def machine_fault(request: Request, exc: Exception) -> Response:
        """Busy or full database, full or read-only disk: plain words, details in the log."""
        fault = describe(exc)
        if fault is None:
            raise exc
        log.warning("%s on %s %s: %s", fault.code, request.method, request.url.path, exc)
        response = _error_response(request, fault.status, fault.code, fault.message, {})
        if fault.status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    for kind in (DBAPIError, SQLAlchemyTimeout, OSError):
        app.add_exception_handler(kind, machine_fault)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_response(
            request,
            500,
            "internal_error",
            "The studio hit an unexpected error; it has been logged.",
            {},
        )
