"""Splits API: preview, create (locked), list, read, verify the fingerprint, delete."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from sqlmodel import Session

from app.deps import get_session
from app.models import Page
from app.models.split import SplitPreview, SplitRead, SplitRequest, SplitVerification
from app.services import splits as service

router = APIRouter(tags=["splits"])

BASE = "/projects/{project_id}/splits"


@router.post(f"{BASE}/preview", response_model=SplitPreview, summary="Preview a split")
def preview_split(
    project_id: int, data: SplitRequest, session: Session = Depends(get_session)
) -> SplitPreview:
    """Counts and class distribution per subset (and fold), warnings; nothing is saved."""
    return service.preview_split(session, project_id, data)


@router.post(BASE, response_model=SplitRead, status_code=201, summary="Create a split")
def create_split(
    project_id: int, data: SplitRequest, session: Session = Depends(get_session)
) -> SplitRead:
    """Saves a locked split with its fingerprint. leave_one_group_out saves one split per
    group as a family; the answer is the first, with `family_members` listing all of them."""
    splits = service.create_split(session, project_id, data)
    return service.read_splits(session, splits[:1])[0]


@router.get(BASE, response_model=Page[SplitRead], summary="List splits")
def list_splits(project_id: int, session: Session = Depends(get_session)) -> Page[SplitRead]:
    """Newest first, including predefined splits that came with an import."""
    items = service.read_splits(session, service.list_splits(session, project_id))
    return Page(items=items, total=len(items), page=1, page_size=len(items))


@router.get(f"{BASE}/{{split_id}}", response_model=SplitRead, summary="Get a split")
def get_split(project_id: int, split_id: int, session: Session = Depends(get_session)) -> SplitRead:
    """With `subsets`: count and class distribution per subset (and fold)."""
    split = service.get_split(session, project_id, split_id)
    return service.read_splits(session, [split], with_subsets=True)[0]


@router.post(
    f"{BASE}/{{split_id}}/verify",
    response_model=SplitVerification,
    summary="Re-verify a split's fingerprint",
)
def verify_split(
    project_id: int, split_id: int, session: Session = Depends(get_session)
) -> SplitVerification:
    """Recomputes the SHA-256 over today's members and image hashes; `match` says if it held."""
    return service.verify_split(session, project_id, split_id)


@router.patch(f"{BASE}/{{split_id}}", summary="Splits are immutable (409)", status_code=409)
@router.put(f"{BASE}/{{split_id}}", summary="Splits are immutable (409)", status_code=409)
def change_split(project_id: int, split_id: int, session: Session = Depends(get_session)) -> None:
    """Always 409 `split_locked` (404 if it does not exist): create a new split instead."""
    service.refuse_change(session, project_id, split_id)


@router.delete(f"{BASE}/{{split_id}}", status_code=204, summary="Delete a split")
def delete_split(
    project_id: int, split_id: int, session: Session = Depends(get_session)
) -> Response:
    """409 `split_in_use` while an experiment uses it."""
    service.delete_split(session, project_id, split_id)
    return Response(status_code=204)
