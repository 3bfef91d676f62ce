"""Fixtures the API tests share."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from app.models import Project
from app.storage import Storage
from tests.factories import make_image, make_split


@pytest.fixture
def split_id(session: Session, storage: Storage, project: Project) -> int:
    assert project.id is not None
    images = [make_image(session, storage, project.id, labels=[c]) for c in "abab"]
    split = make_split(session, project.id, images, ratios=(0.5, 0.25, 0.25))
    assert split.id is not None
    return split.id
