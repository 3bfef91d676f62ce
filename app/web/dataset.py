"""The dataset page: thumbnail grid with filters, class panel, statistics and duplicates, and
the image detail view with per-class overlays."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request, Response
from sqlmodel import Session

from app.deps import get_session, get_storage
from app.errors import StudioError
from app.models.browse import IMAGE_SORTS, SUBSETS, AnnotationRead, ClassUpdate, ImageQuery
from app.services import classes as class_service
from app.services import image_files, name_search, targets
from app.services import images as image_service
from app.services import projects as project_service
from app.services import stats as stats_service
from app.storage import Storage
from app.templating import render
from app.web.common import is_htmx, nav_context, parse_form
from app.web.nav import register_project_page

router = APIRouter()
register_project_page("dataset", "Dataset", "/dataset", 10)

SORT_LABELS = {
    "name": "Name (A-Z)",
    "-name": "Name (Z-A)",
    "date": "Oldest first",
    "-date": "Newest first",
    "size": "Smallest file",
    "-size": "Largest file",
    "class": "Class",
    "-class": "Class (reversed)",
}
FILTER_KEYS = (
    "class_id",
    "annotated",
    "split_id",
    "subset",
    "attr",
    "q",
    "target",
    "target_min",
    "target_max",
    "sort",
    "page_size",
)


def _query(request: Request) -> ImageQuery:
    """Filters from the URL; blank form fields mean "any"."""
    params = {k: v for k, v in request.query_params.items() if v.strip() != ""}
    return parse_form(ImageQuery, params)


def _link(base: str, query: ImageQuery, **overrides: Any) -> str:
    values = {k: getattr(query, k) for k in (*FILTER_KEYS, "page", "cursor")}
    if "page" in overrides or "cursor" in overrides:
        values.update(page=None, cursor=None)  # a link names one position, not both
    values.update(overrides)
    defaults = ImageQuery()
    clean = {
        k: ("true" if v is True else "false" if v is False else v)
        for k, v in values.items()
        if v is not None and v != getattr(defaults, k)
    }
    return f"{base}?{urlencode(clean)}" if clean else base


GRID_SHAPES = 60  # outlines per thumbnail: enough to see the annotation, bounded page size


def _grid_context(session: Session, project_id: int, query: ImageQuery) -> dict[str, Any]:
    listing = image_service.list_images(session=session, project_id=project_id, query=query)
    classes = class_service.list_classes(session=session, project_id=project_id)
    total, page = listing.total, listing.page
    images = listing.items
    annotations = image_service.annotations_of(
        session=session, project_id=project_id, image_ids=[image.id for image in images]
    )
    shapes = {
        image_id: annotation_shapes(found)[:GRID_SHAPES] for image_id, found in annotations.items()
    }
    pages = max(1, math.ceil(total / query.page_size))
    base = f"/projects/{project_id}/dataset"
    # Previous/next follow the answer's cursors (as fast on page 900 as on page 2); the
    # numbered links jump by page number.
    prev_link = _link(base, query, cursor=listing.prev_cursor) if listing.prev_cursor else None
    next_link = _link(base, query, cursor=listing.next_cursor) if listing.next_cursor else None
    return {
        "images": images,
        "shapes": {k: [s for s in v if s["kind"] != "label"] for k, v in shapes.items()},
        "total": total,
        "query": query,
        "page": page,
        "pages": pages,
        "search_mode": name_search.search_mode(session),
        "classes": classes,
        "class_by_id": {c.id: c for c in classes},
        "taxonomy": class_service.taxonomy(session=session, project_id=project_id),
        "page_links": [(n, _link(base, query, page=n)) for n in _page_numbers(page, pages)],
        "prev_link": prev_link,
        "next_link": next_link,
        # An image opened from the grid keeps its filters, sort and page (for "Back").
        "detail_suffix": _link("", query, page=page, cursor=None),
    }


def _page_numbers(current: int, pages: int) -> list[int]:
    wanted = {1, pages, *range(max(1, current - 2), min(pages, current + 2) + 1)}
    return sorted(wanted)


@router.get("/projects/{project_id}/dataset")
def dataset_page(
    request: Request, project_id: int, session: Session = Depends(get_session)
) -> Response:
    project = project_service.get_project(session=session, project_id=project_id)
    query = _query(request)
    context = _grid_context(session, project_id, query)
    if (
        is_htmx(request)
        and request.headers.get("hx-target") == "image-grid"
        and not request.headers.get("hx-history-restore-request")
    ):
        response = render(request, "partials/_image_grid.html", project_id=project_id, **context)
        # The address bar gets the clean link (no blank form fields), so it can be shared.
        response.headers["HX-Push-Url"] = _link(f"/projects/{project_id}/dataset", query)
        return response
    read = project_service.read_project(session=session, project=project)
    return render(
        request,
        "pages/dataset/index.html",
        p=read,
        project_id=project_id,
        splits=image_service.split_choices(session=session, project_id=project_id),
        target_names=targets.target_names(session, project_id),
        subsets=SUBSETS,
        sorts=[(key, SORT_LABELS[key]) for key in IMAGE_SORTS],
        **context,
        **nav_context(read, "dataset"),
    )


@router.get("/projects/{project_id}/dataset/class-options")
def class_options(
    request: Request, project_id: int, session: Session = Depends(get_session)
) -> Response:
    """The class filter's options, refreshed after a class is renamed or recolored."""
    classes = class_service.list_classes(session=session, project_id=project_id)
    return render(request, "partials/_class_options.html", classes=classes, query=_query(request))


@router.get("/projects/{project_id}/dataset/stats")
def dataset_stats(
    request: Request, project_id: int, session: Session = Depends(get_session)
) -> Response:
    """The statistics panel, loaded after the grid so a large dataset's page shows at once."""
    stats = stats_service.dataset_stats(session=session, project_id=project_id)
    return render(request, "partials/_dataset_stats.html", stats=stats, project_id=project_id)


def _class_panel(request: Request, session: Session, project_id: int) -> Response:
    classes = class_service.list_classes(session=session, project_id=project_id)
    return render(
        request,
        "partials/_class_panel.html",
        classes=classes,
        class_by_id={c.id: c for c in classes},
        taxonomy=class_service.taxonomy(session=session, project_id=project_id),
        project_id=project_id,
    )


@router.get("/projects/{project_id}/dataset/classes")
def class_panel(
    request: Request, project_id: int, session: Session = Depends(get_session)
) -> Response:
    project_service.get_project(session=session, project_id=project_id)
    return _class_panel(request, session, project_id)


@router.patch("/projects/{project_id}/dataset/classes/{class_id}")
def update_class(
    request: Request,
    project_id: int,
    class_id: int,
    name: str | None = Form(None),
    color: str | None = Form(None),
    parent_id: str | None = Form(None),
    session: Session = Depends(get_session),
) -> Response:
    """The class panel's inline edit; an empty parent choice removes the parent."""
    fields: dict[str, Any] = {"name": name, "color": color}
    if parent_id is not None:
        fields["parent_id"] = int(parent_id) if parent_id.strip().isdigit() else None
    data = parse_form(ClassUpdate, fields)
    if parent_id is not None:
        data.parent_id = fields["parent_id"]  # keep an explicit "none" (None) as sent
    class_service.update_class(session=session, project_id=project_id, class_id=class_id, data=data)
    response = _class_panel(request, session, project_id)
    response.headers["HX-Trigger"] = "classes-changed"
    return response


def annotation_shapes(annotations: list[AnnotationRead]) -> list[dict[str, Any]]:
    """The overlay macro's shapes for an image's own annotations; masks first, so a mask
    never hides a box."""
    ordered = sorted(annotations, key=lambda a: a.kind != "mask")
    return [
        {
            "kind": a.kind,
            "geometry": a.geometry,
            "role": "annotation",
            "color": a.color,
            "label": a.class_name or "",
            "cid": a.class_id if a.kind == "mask" else (a.class_id or 0),
            "href": a.overlay_url if a.kind == "mask" else None,
        }
        for a in ordered
    ]


TIMES, DASH = " \u00d7 ", "\u2013"  # multiplication sign and en dash: "12 x 30 px", "x 5-80"


def _px(value: Any) -> str:
    return str(math.floor(float(value) + 0.5))  # half up: 150.5 -> 151, as people round


def geometry_text(annotation: AnnotationRead) -> str:
    """An annotation's geometry in words and whole pixels (the API keeps the exact floats)."""
    g = annotation.geometry
    try:
        if annotation.kind == "bbox":
            return f"x {_px(g['x'])}, y {_px(g['y'])} · {_px(g['w'])}{TIMES}{_px(g['h'])} px"
        if annotation.kind == "obb":
            return (
                f"centre {_px(g['cx'])}, {_px(g['cy'])} · {_px(g['w'])}{TIMES}{_px(g['h'])} px"
                f" · {float(g.get('angle', 0)):.1f}°"
            )
        if annotation.kind == "polygon":
            rings = g.get("rings") or [g.get("points", [])]
            points = [p for ring in rings for p in ring if isinstance(p, list | tuple)]
            xs, ys = [float(p[0]) for p in points], [float(p[1]) for p in points]
            holes = (
                f", {len(rings) - 1} hole{'s' if len(rings) > 2 else ''}" if len(rings) > 1 else ""
            )
            return (
                f"{len(points)} points{holes} · x {_px(min(xs))}{DASH}{_px(max(xs))},"
                f" y {_px(min(ys))}{DASH}{_px(max(ys))}"
            )
        if annotation.kind == "value":
            return ", ".join(f"{float(v):.4g}" for v in g.get("values", []))
        if annotation.kind == "mask":
            return "mask image (drawn on the picture)"
        if annotation.kind == "label":
            return "the whole image"
    except (KeyError, TypeError, ValueError):
        return "unreadable geometry"
    return ""


def _annotation_summary(annotations: list[AnnotationRead]) -> list[tuple[str, int]]:
    """(class or kind, count), most frequent first: the heading of a long object list."""
    counts: dict[str, int] = {}
    for a in annotations:
        key = a.class_name or a.kind
        counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


@router.get("/projects/{project_id}/dataset/images/{image_id}")
def image_page(
    request: Request,
    project_id: int,
    image_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    project = project_service.get_project(session=session, project_id=project_id)
    read = project_service.read_project(session=session, project=project)
    detail = image_service.get_image_detail(
        session=session, project_id=project_id, image_id=image_id
    )
    classes = class_service.list_classes(session=session, project_id=project_id)
    class_by_id = {c.id: c for c in classes}
    present_ids = list(detail.class_ids)
    for a in detail.annotations:
        if a.kind == "mask":
            try:
                painted = image_files.mask_class_ids(
                    session=session,
                    storage=storage,
                    project_id=project_id,
                    image_id=image_id,
                    annotation_id=a.id,
                )
            except StudioError:
                painted = []  # a missing or broken mask file: the overlay request says why
            present_ids += [c for c in painted if c not in present_ids]
    present = [class_by_id[c] for c in present_ids if c in class_by_id]
    shapes = annotation_shapes(detail.annotations)
    query = _query(request)
    near = image_service.neighbours(
        session=session, project_id=project_id, image_id=image_id, query=query
    )
    suffix = _link("", query, page=query.page, cursor=None)
    base = f"/projects/{project_id}/dataset/images"
    return render(
        request,
        "pages/dataset/image.html",
        p=read,
        image=detail,
        shapes=shapes,
        present=present,
        hidden=[c.id for c in present if image_files.is_background_name(c.name)],
        class_by_id=class_by_id,
        splits=dict(image_service.split_choices(session=session, project_id=project_id)),
        back=_link(f"/projects/{project_id}/dataset", query),
        near=near,
        prev_url=f"{base}/{near.previous}{suffix}" if near.previous else None,
        next_url=f"{base}/{near.next}{suffix}" if near.next else None,
        annotation_rows=[(a, geometry_text(a)) for a in detail.annotations],
        annotation_summary=_annotation_summary(detail.annotations),
        **nav_context(read, "dataset"),
    )
