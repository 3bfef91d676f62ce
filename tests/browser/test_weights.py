"""The Weights page: reachable from the navigation, lists each model's state, refuses a file
that does not fit the architecture in place, and adds one that does from a server folder."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from playwright.sync_api import Page, expect

from tests.support.studio import LiveStudio

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[LiveStudio]:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    live = LiveStudio(
        tmp_path / "workspace",
        extra_env={
            "TORCH_HOME": str(tmp_path / "torch-home"),
            "HF_HOME": str(tmp_path / "hf-home"),
            "STUDIO_WEIGHTS_DIR": str(tmp_path / "weights-dir"),
            "STUDIO_IMPORT_ROOTS": str(incoming),
        },
    )
    yield live
    live.stop()


def test_weights_page_lists_refuses_and_adds(page: Page, studio: LiveStudio) -> None:
    import torchvision

    page.goto("/")
    page.get_by_role("link", name="Weights").click()
    expect(page.get_by_role("heading", name="Pretrained weights")).to_be_visible()
    expect(page.get_by_test_id("weights-state-resnet18")).to_contain_text("missing")
    expect(page.get_by_test_id("weights-state-small_cnn")).to_contain_text("none published")
    expect(page.get_by_test_id("weights-row-dinov3_vit_small")).to_contain_text("huggingface")

    buffer = io.BytesIO()
    torch.save({"stem.weight": torch.zeros(2, 2)}, buffer)
    page.get_by_test_id("weights-model").select_option("resnet18")
    page.get_by_test_id("weights-file").set_input_files(
        {
            "name": "resnet18.pth",
            "mimeType": "application/octet-stream",
            "buffer": buffer.getvalue(),
        }
    )
    page.get_by_test_id("weights-submit").click()
    error = page.locator("#weights-error")
    expect(error).to_contain_text("does not match ResNet-18", timeout=90_000)
    expect(error).to_contain_text("unexpected tensors: stem.weight")
    expect(page.get_by_test_id("weights-state-resnet18")).to_contain_text("missing")

    incoming = studio.workspace.parent / "incoming"
    torch.save(
        torchvision.models.mobilenet_v3_small(weights=None).state_dict(), incoming / "mnv3.pth"
    )
    page.get_by_test_id("weights-file").set_input_files([])
    page.get_by_test_id("weights-model").select_option("mobilenet_v3_small")
    page.get_by_test_id("weights-path").fill("mnv3.pth")
    page.get_by_test_id("weights-submit").click()
    expect(page.get_by_test_id("weights-added")).to_contain_text(
        "mobilenet_v3_small", timeout=90_000
    )
    state = page.get_by_test_id("weights-state-mobilenet_v3_small")
    expect(state).to_contain_text("present")
    expect(state).to_contain_text("sha256")


def test_training_form_warns_about_random_initialisation_on_few_photos(
    page: Page, studio: LiveStudio
) -> None:
    """20 photo-sized images: a model without local weights gets the warning, one whose
    weights are present does not."""
    import numpy as np
    from sqlmodel import Session

    from app.db import engine_for
    from app.storage import Storage
    from tests.factories import make_image, make_project, make_split

    weights_dir = studio.workspace.parent / "weights-dir"
    weights_dir.mkdir(exist_ok=True)
    (weights_dir / "resnet18-f37072fd.pth").write_bytes(b"present is all the form checks")
    engine = engine_for(f"sqlite:///{studio.workspace / 'studio.db'}")
    storage = Storage(studio.workspace)
    rng = np.random.default_rng(0)
    with Session(engine, expire_on_commit=False) as session:
        project = make_project(session, name="Photos")
        assert project.id is not None
        images = [
            make_image(session, storage, project.id, labels=[name],
                       pixels=rng.integers(0, 256, (120, 160, 3), np.uint8))
            for name in ["cat", "dog"] * 10
        ]  # fmt: skip
        make_split(session, project.id, images, ratios=(0.6, 0.2, 0.2), name="main")
    engine.dispose()
    page.goto(f"/projects/{project.id}/training")
    warning = page.get_by_test_id("random-init-warning")
    expect(warning).to_be_visible()  # the default small CNN has no published weights
    page.get_by_test_id("experiment-model").select_option("resnet18")
    expect(warning).to_be_hidden()
    page.get_by_test_id("experiment-model").select_option("dinov3_vit_small")
    expect(warning).to_be_visible()
    expect(warning.get_by_role("link", name="Weights page")).to_have_attribute("href", "/weights")
