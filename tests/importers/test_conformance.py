"""Every sample folder of the shared format corpus imports with the expected counts, or is
refused with an error naming the problem. Skipped when the corpus is absent (CI clones).

Each row: task type, then either (format, images, classes created, annotation rows) or
("reject", error code, words the message must contain).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from app.models import DatasetImport
from app.storage import Storage
from tests.factories import make_project
from tests.importers.builders import run_now

pytestmark = pytest.mark.slow


def corpus_root() -> Path | None:
    configured = os.environ.get("STUDIO_SHARED_DIR")
    base = Path(configured) if configured else Path(__file__).parents[3] / "shared"
    root = base / "datasets" / "formats"
    return root if root.is_dir() else None


EXPECTED: dict[str, tuple[Any, ...]] = {
    "anomaly/datumaro_mvtec_layout": ("anomaly", "anomaly", 3, 2, 5),
    "classification_folders/datumaro_imagenet_edgecases": ("classification", "folders", 3, 2, 3),
    "classification_folders/datumaro_imagenet_subsets": ("classification", "folders", 9, 2, 9),
    "classification_folders/ultralytics_imagenet10_real": ("classification", "folders", 20, 10, 20),
    "coco/cocoapi_results_compressed_rle": (
        "detection",
        "reject",
        "coco_results_file",
        "results file",
    ),
    "coco/datumaro_instances_rle": ("detection", "coco", 2, 3, 3),
    "coco/datumaro_relaxed_flat": ("detection", "coco", 2, 2, 2),
    "coco/datumaro_roboflow_split_folders": ("detection", "coco", 2, 3, 3),
    "coco/labelme_voc2011_polygons_real": ("instance_segmentation", "coco", 3, 20, 12),
    "coco/pycococreator_blueberry_rle_real": ("segmentation", "coco", 1, 2, 2),
    "csv/datumaro_kaggle_bbox_csv": ("detection", "csv", 3, 2, 6),
    "csv/datumaro_kaggle_image_csv": ("classification", "csv", 5, 2, 5),
    "csv/datumaro_kaggle_image_txt": ("classification", "csv", 5, 2, 5),
    "csv/datumaro_kaggle_multilabel_csv": ("classification", "csv", 6, 3, 9),
    "csv/datumaro_roboflow_multiclass_onehot": ("classification", "csv", 3, 2, 4),
    "dota/datumaro_dota_splits": ("oriented_detection", "dota", 3, 2, 4),
    "dota/dota_devkit_p1888_raw_header_real": ("oriented_detection", "dota", 1, 2, 64),
    "dota/mmrotate_dota_p0004_real": ("oriented_detection", "dota", 1, 1, 1),
    "dota/mmrotate_dota_p2805_real": ("oriented_detection", "dota", 1, 1, 0),
    "mask_png/datumaro_camvid": ("segmentation", "reject", "nothing_imported", "colour map"),
    "mask_png/datumaro_common_semantic": ("segmentation", "masks", 2, 7, 4),
    "mask_png/datumaro_common_semantic_prefixed_names": ("segmentation", "masks", 2, 9, 5),
    "mask_png/datumaro_kaggle_image_mask": ("segmentation", "masks", 2, 2, 4),
    "mask_png/datumaro_kaggle_image_mask_rgb_labelmap": ("segmentation", "masks", 3, 3, 9),
    "mask_png/labelme_voc2011_instance_real": ("segmentation", "masks", 3, 21, 10),
    "mask_png/labelme_voc2011_semantic_real": ("segmentation", "masks", 3, 21, 10),
    "voc/datumaro_roboflow_flat": ("detection", "voc", 3, 2, 4),
    "voc/datumaro_voc_full": ("detection", "voc", 1, 2, 2),
    "voc/datumaro_voc_labelmap_noimages": ("detection", "reject", "no_images", "No images"),
    "voc/datumaro_voc_minimal": ("detection", "voc", 1, 1, 1),
    "voc/labelme_voc2011_bbox_real": ("detection", "voc", 3, 20, 9),
    "voc/raccoon_voc_plus_csv_real": ("detection", "voc", 40, 1, 44),
    "yolo/datumaro_darknet_strict": ("detection", "yolo", 1, 10, 2),
    "yolo/datumaro_images_labels_layout": ("detection", "yolo", 2, 10, 4),
    "yolo/datumaro_relaxed_flat": ("detection", "yolo", 2, 4, 4),
    "yolo/datumaro_roboflow_datayaml": ("detection", "yolo", 3, 2, 4),
    "yolo/ultralytics_coco8_real": ("detection", "yolo", 8, 80, 30),
    "yolo_obb/datumaro_roboflow_obb_dotastyle": ("oriented_detection", "dota", 3, 2, 4),
    "yolo_obb/ultralytics_dota8_real": ("oriented_detection", "yolo", 8, 15, 133),
    "yolo_seg/ultralytics_coco8_seg_real": ("segmentation", "yolo", 8, 81, 23),
}

ROOT = corpus_root()


def test_every_corpus_folder_has_an_expectation() -> None:
    if ROOT is None:
        pytest.skip("shared/datasets/formats is absent")
    present = {f"{p.parent.name}/{p.name}" for p in ROOT.glob("*/*") if p.is_dir()}
    assert present == set(EXPECTED)


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_corpus_folder_imports_or_is_rejected_clearly(
    folder: str, session: Session, storage: Storage, engine: Any
) -> None:
    if ROOT is None:
        pytest.skip("shared/datasets/formats is absent")
    task, *expected = EXPECTED[folder]
    project = make_project(session, task_type=task)
    row = DatasetImport(project_id=project.id, source=f"folder:{ROOT / folder}")
    session.add(row)
    session.commit()
    session.refresh(row)
    if expected[0] == "reject":
        with pytest.raises(Exception) as error:
            run_now(engine, storage, row.id)
        assert getattr(error.value, "code", None) == expected[1]
        assert expected[2] in str(error.value)
        session.expire_all()
        assert session.get(DatasetImport, row.id).status == "failed"
        return
    summary = run_now(engine, storage, row.id)
    fmt, images, classes, annotations = expected
    got = (summary["format"], summary["images"], summary["classes"], summary["annotations"])
    assert got == (fmt, images, classes, annotations)
