"""Images API: the filtered list, details with annotations, file, thumbnail, mask overlays and
dataset statistics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import FileResponse
from sqlmodel import Session

from app.deps import get_session, get_storage
from app.models.browse import DatasetStats, ImageDetail, ImageNeighbours, ImagePage, ImageQuery
from app.services import image_files as files
from app.services import images as service
from app.services import stats as stats_service
from app.storage import Storage

router = APIRouter(tags=["images"])

# Content-addressed URLs (?v=<sha256 prefix>) may be kept a day; the ETag makes a reload cheap.
CACHE_CONTROL = "private, max-age=86400"


def _file(answer: files.FileAnswer, if_none_match: str | None) -> Response:
    headers = {"ETag": answer.etag, "Cache-Control": CACHE_CONTROL}
    if files.etag_matches(if_none_match, answer.etag):
        return Response(status_code=304, headers=headers)
    return FileResponse(answer.path, media_type=answer.media_type, headers=headers)


@router.get("/projects/{project_id}/images", response_model=ImagePage, summary="List images")
def list_images(
    project_id: int,
    query: Annotated[ImageQuery, Query()],
    session: Session = Depends(get_session),
) -> ImagePage:
    """Filter by class, annotation presence, split and subset, attribute (key=value), file
    name and a numeric target's range (`target`, `target_min`, `target_max`; regression);
    sort by name, date, size or class (prefix `-` for descending). Page by `page`, or by
    `cursor` = the `next_cursor` / `prev_cursor` of an earlier answer (as fast deep in a large
    result as on its first page). Items carry `values`, their numeric targets by name."""
    return service.list_images(session=session, project_id=project_id, query=query)


@router.get(
    "/projects/{project_id}/images/{image_id}/neighbours",
    response_model=ImageNeighbours,
    summary="The images before and after one in a filtered, sorted list",
)
def image_neighbours(
    project_id: int,
    image_id: int,
    query: Annotated[ImageQuery, Query()],
    session: Session = Depends(get_session),
) -> ImageNeighbours:
    """Takes the list's filters and sort (page and cursor are ignored): what the image view's
    previous/next buttons and arrow keys step through."""
    return service.neighbours(
        session=session, project_id=project_id, image_id=image_id, query=query
    )


@router.get(
    "/projects/{project_id}/images/{image_id}",
    response_model=ImageDetail,
    summary="Get an image with its annotations",
)
def get_image(
    project_id: int, image_id: int, session: Session = Depends(get_session)
) -> ImageDetail:
    return service.get_image_detail(session=session, project_id=project_id, image_id=image_id)


@router.get(
    "/projects/{project_id}/images/{image_id}/file",
    summary="The original image file",
    response_class=FileResponse,
)
def image_file(
    project_id: int,
    image_id: int,
    if_none_match: str | None = Header(None),
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    """With an ETag (the sha256); 304 when If-None-Match matches."""
    answer = files.image_file(
        session=session, storage=storage, project_id=project_id, image_id=image_id
    )
    return _file(answer, if_none_match)


@router.get(
    "/projects/{project_id}/images/{image_id}/thumbnail",
    summary="A thumbnail (at most 256 px)",
    response_class=FileResponse,
)
def image_thumbnail(
    project_id: int,
    image_id: int,
    if_none_match: str | None = Header(None),
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    """Made on first request (and kept) when the import did not make one."""
    answer = files.image_thumbnail(
        session=session, storage=storage, project_id=project_id, image_id=image_id
    )
    return _file(answer, if_none_match)


@router.get(
    "/projects/{project_id}/images/{image_id}/annotations/{annotation_id}/overlay",
    summary="A mask as a colorized, transparent PNG",
    response_class=Response,
)
def mask_overlay(
    project_id: int,
    image_id: int,
    annotation_id: int,
    hide: str | None = Query(None, max_length=2000, description="class ids to leave clear"),
    if_none_match: str | None = Header(None),
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    """One color per class; ignore pixels (255), hidden classes and, unless `hide` is given,
    background classes stay transparent."""
    data, etag = files.mask_overlay(
        session=session,
        storage=storage,
        project_id=project_id,
        image_id=image_id,
        annotation_id=annotation_id,
        hide=files.parse_hide(hide),
    )
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if files.etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type="image/png", headers=headers)


@router.get(
    "/projects/{project_id}/stats", response_model=DatasetStats, summary="Dataset statistics"
)
def dataset_stats(
    project_id: int,
    near_threshold: int = Query(
        stats_service.DEFAULT_NEAR_THRESHOLD,
        ge=0,
        le=16,
        description="largest perceptual-hash Hamming distance counted as a near duplicate",
    ),
    session: Session = Depends(get_session),
) -> DatasetStats:
    """Image and annotation counts, class distribution, size histogram, exact duplicates
    (sha256) and near duplicates (perceptual hash)."""
    return stats_service.dataset_stats(
        session=session, project_id=project_id, near_threshold=near_threshold
    )
