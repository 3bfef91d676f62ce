"""Request bodies that are either a multipart upload or JSON naming a server path (imports,
weights): one OpenAPI description and one size-checked JSON reader."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from app.config import Settings
from app.errors import Invalid, TooLarge

Body = TypeVar("Body", bound=BaseModel)


def file_or_path_doc(fields: dict[str, dict[str, Any]], required: list[str]) -> dict[str, Any]:
    """openapi_extra for a body that is multipart (`file` + fields) or JSON (`path` + fields)."""

    def schema(first: str, kind: dict[str, Any]) -> dict[str, Any]:
        return {
            "schema": {
                "type": "object",
                "properties": {first: kind, **fields},
                "required": [first, *required],
            }
        }

    return {
        "requestBody": {
            "content": {
                "multipart/form-data": schema("file", {"type": "string", "format": "binary"}),
                "application/json": schema("path", {"type": "string"}),
            }
        }
    }


def body_kind(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def json_body(request: Request, settings: Settings, model: type[Body], hint: str) -> Body:
    """The JSON body as `model`; 413 past STUDIO_MAX_JSON_KB, 422 with `hint` when invalid."""
    raw = await request.body()
    if len(raw) > settings.max_json_kb * 1024:
        raise TooLarge("The JSON body is too large.", code="body_too_large")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise Invalid(
            f"Send {hint}: " + "; ".join(str(e["msg"]) for e in exc.errors()) + ".",
            code="validation_error",
        ) from None
