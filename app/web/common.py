"""Small helpers the web routers share (form parsing, htmx detection, page context)."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from app.errors import Invalid
from app.validation import describe, form_sentence
from app.web.nav import project_pages

M = TypeVar("M", bound=BaseModel)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def parse_form(model: type[M], data: dict[str, Any]) -> M:
    """Validate form fields with the same schema the API uses; each error is a plain sentence
    about its field, which the page shows beside that field (static/js/ui.js)."""
    cleaned = {k: v for k, v in data.items() if v is not None}
    try:
        return model.model_validate(cleaned)
    except ValidationError as exc:
        fields = describe(exc)
        raise Invalid(
            form_sentence(fields), code="validation_error", details={"fields": fields}
        ) from None


def nav_context(project: Any, active: str) -> dict[str, Any]:
    return {"project": project, "active": active, "project_pages": project_pages()}
