"""Weights page: what each model starts from, where the studio looks, how to add weights."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.config import Settings
from app.deps import get_settings, get_storage
from app.errors import BadRequest, Invalid
from app.services import weights as service
from app.storage import Storage
from app.templating import render
from app.web.common import nav_context

router = APIRouter()


@router.get("/weights")
def weights_page(request: Request, settings: Settings = Depends(get_settings)) -> Response:
    return render(
        request,
        "pages/weights.html",
        rows=service.list_weights(settings),
        added=None,
        import_roots=[str(r) for r in settings.import_roots],
        **nav_context(None, "weights"),
    )


@router.post("/weights")
async def add_weights(
    request: Request,
    settings: Settings = Depends(get_settings),
    storage: Storage = Depends(get_storage),
) -> Response:
    """The form's upload or server file; answers the refreshed table with what was added."""
    form = await request.form(max_files=1, max_fields=5)
    model_id, upload, path = form.get("model_id"), form.get("file"), form.get("path")
    if not isinstance(model_id, str) or not model_id:
        raise Invalid("Choose the model these weights are for.", code="validation_error")
    if isinstance(upload, UploadFile) and upload.filename:
        added = await run_in_threadpool(
            service.add_weights,
            settings,
            storage,
            model_id=model_id,
            stream=upload.file,
            filename=upload.filename,
        )
    elif isinstance(path, str) and path.strip():
        added = await run_in_threadpool(
            service.add_weights, settings, storage, model_id=model_id, path=path.strip()
        )
    else:
        raise BadRequest("Choose a weights file or give a server path.", code="file_missing")
    return render(
        request, "partials/_weights_table.html", rows=service.list_weights(settings), added=added
    )
