"""Small helpers the web routers share (form parsing, htmx detection, page context)."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from app.errors import Invalid
from app.web.nav import project_pages

M = TypeVar("M", bound=BaseModel)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def parse_form(model: type[M], data: dict[str, Any]) -> M:
    """Validate form fields with the same schema the API uses; errors read like the API's."""
    cleaned = {k: v for k, v in data.items() if v is not None}
    try:
        return model.model_validate(cleaned)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "form"
            parts.append(f"{field}: {str(err['msg']).removeprefix('Value error, ')}")
        raise Invalid("; ".join(parts) + ".", code="validation_error") from None


def nav_context(project: Any, active: str) -> dict[str, Any]:
    return {"project": project, "active": active, "project_pages": project_pages()}
