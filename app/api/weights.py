"""Pretrained weights API: what each catalog model would start from, and adding weights
offline (upload or a file below the import roots), verified against the architecture."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import UploadFile

from app.api.bodies import body_kind, file_or_path_doc, json_body
from app.config import Settings
from app.deps import get_settings, get_storage
from app.errors import BadRequest, Invalid, UnsupportedMedia
from app.services import weights as service
from app.storage import Storage
from app.tasks import get_task

router = APIRouter(tags=["weights"])

BODY_DOC = file_or_path_doc({"model_id": {"type": "string"}}, ["model_id"])


class WeightsFromPath(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str
    path: str


@router.get("/weights", summary="Pretrained weights of every catalog model")
def list_weights(
    task: str | None = Query(None, description="Only the models of this task type"),
    settings: Settings = Depends(get_settings),
) -> dict[str, Any]:
    """Per model: `model_id`, `source` (torchvision, huggingface or none), `looked_in` (every
    path tried, in order), `present`, `file`, `bytes`, `sha256` and `how_to_provide` (file
    name, commands for a machine with internet, where to put the file)."""
    if task is not None:
        get_task(task)  # 422 naming the task types when unknown
    items = service.list_weights(settings, task)
    return {"items": items, "total": len(items)}


@router.post("/weights", status_code=201, summary="Add pretrained weights", openapi_extra=BODY_DOC)
async def add_weights(
    request: Request,
    settings: Settings = Depends(get_settings),
    storage: Storage = Depends(get_storage),
) -> dict[str, Any]:
    """Multipart (`file`, `model_id`) or JSON `{"model_id", "path"}` (a file below an import
    root). The file is loaded as tensors only and must match the model's architecture; 422
    `weights_mismatch` says which tensors did not. Returns the model's weights row."""
    kind = body_kind(request)
    if kind == "application/json":
        body = await json_body(
            request,
            settings,
            WeightsFromPath,
            '{"model_id": "<catalog id>", "path": "<file below an import root>"}',
        )
        return await run_in_threadpool(
            service.add_weights, settings, storage, model_id=body.model_id, path=body.path
        )
    if kind != "multipart/form-data":
        raise UnsupportedMedia(
            "Send a multipart form with `file` and `model_id`, or JSON with `model_id` and `path`.",
            code="unsupported_media_type",
        )
    form = await request.form(max_files=1, max_fields=5)
    upload, model_id = form.get("file"), form.get("model_id")
    if not isinstance(upload, UploadFile):
        raise BadRequest(
            "The form needs the weights file in the `file` field.", code="file_missing"
        )
    if not isinstance(model_id, str) or not model_id:
        raise Invalid("The form needs `model_id` (a catalog model id).", code="validation_error")
    return await run_in_threadpool(
        service.add_weights,
        settings,
        storage,
        model_id=model_id,
        stream=upload.file,
        filename=upload.filename or "weights.pth",
    )
