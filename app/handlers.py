"""Exception handlers: one JSON error shape for /api, an error page or fragment for HTML."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import StudioError
from app.templating import render
from app.validation import api_sentence, describe_errors

log = logging.getLogger("app")


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
        return _error_response(request, exc.status, exc.code, exc.message, exc.details)

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
