"""Each importer on small self-made sources, and how a format maps onto each task type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlmodel import Session, select

from app.importers import detect_format, read_source
from app.importers.base import ImportProblem
from app.models import Annotation, DatasetImport, Image, ImageAttribute, LabelClass
from app.storage import Storage
from tests.factories import make_project
from tests.importers.builders import class_folders, coco, picture, run_now, yolo


def imported(
    session: Session, storage: Storage, engine: Any, root: Path, task: str, fmt: str | None = None
) -> tuple[dict[str, Any], list[Annotation], dict[str, int]]:
    project = make_project(session, task_type=task)
    row = DatasetImport(project_id=project.id, source=f"folder:{root}", format=fmt)
    session.add(row)
    session.commit()
    session.refresh(row)
    summary = run_now(engine, storage, row.id)
    session.expire_all()
    annotations = list(session.exec(select(Annotation).where(Annotation.project_id == project.id)))
    classes = {
        c.name: c.index
        for c in session.exec(select(LabelClass).where(LabelClass.project_id == project.id))
    }
    return summary, annotations, classes


@pytest.mark.parametrize(
    ("builder", "task", "expected"),
    [
        (lambda p: class_folders(p, {"a": 1}), "classification", "folders"),
        (coco, "detection", "coco"),
        (lambda p: yolo(p, {"x": "0 0.5 0.5 0.2 0.2\n"}, ["cat"]), "detection", "yolo"),
    ],
)
def test_formats_are_detected(tmp_path: Path, builder: Any, task: str, expected: str) -> None:
    assert detect_format(builder(tmp_path / "src"), task).key == expected


def test_undetectable_source_names_the_task_formats(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImportProblem) as error:
        read_source(tmp_path, "detection")
    assert error.value.code == "format_not_detected" and "coco" in error.value.message


def test_coco_polygons_and_rle_become_an_index_mask_for_segmentation(
    session: Session, storage: Storage, engine: Any, tmp_path: Path
) -> None:
    _, annotations, classes = imported(
        session, storage, engine, coco(tmp_path / "c"), "segmentation"
    )
    assert classes == {"background": 0, "cat": 1, "dog": 2}
    assert {a.kind for a in annotations} == {"mask"}
    by_image: dict[int, list[Annotation]] = {}
    for a in annotations:
        by_image.setdefault(a.image_id, []).append(a)
    masks = {}
    for rows in by_image.values():
        assert len({r.geometry["path"] for r in rows}) == 1  # one file per image
        masks[tuple(sorted(r.geometry["index"] for r in rows))] = np.asarray(
            PILImage.open(storage.resolve(rows[0].geometry["path"]))
        )
    polygon_mask = masks[(0, 1)]  # the cat square 2..12 on image a; dog box only (no shape)
    assert polygon_mask.shape == (30, 40) and polygon_mask[5, 5] == 1 and polygon_mask[20, 30] == 0
    assert (masks[(2,)] == 2).all()  # the iscrowd RLE covers image b entirely


def test_coco_rle_becomes_an_instance_mask_and_polygons_stay_polygons(
    session: Session, storage: Storage, engine: Any, tmp_path: Path
) -> None:
    _, annotations, _ = imported(
        session, storage, engine, coco(tmp_path / "c"), "instance_segmentation"
    )
    kinds = sorted(a.kind for a in annotations)
    assert kinds == ["bbox", "mask", "polygon"]
    mask = next(a for a in annotations if a.kind == "mask")
    assert mask.attributes["iscrowd"] == 1 and mask.geometry["value"] == 1
    assert np.asarray(PILImage.open(storage.resolve(mask.geometry["path"]))).all()


def test_yolo_obb_lines_become_oriented_boxes(
    session: Session, storage: Storage, engine: Any, tmp_path: Path
) -> None:
    root = yolo(tmp_path / "y", {"a": "0 0.2 0.25 0.6 0.25 0.6 0.5 0.2 0.5\n"}, ["ship"])
    _, annotations, _ = imported(session, storage, engine, root, "oriented_detection")
    (obb,) = annotations
    assert obb.kind == "obb"
    assert obb.geometry == pytest.approx(
        {"cx": 20.0, "cy": 15.0, "w": 20.0, "h": 10.0, "angle": 0.0}
    )


def test_dota_header_lines_difficulty_and_boxes_to_obb(
    session: Session, storage: Storage, engine: Any, tmp_path: Path
) -> None:
    root = tmp_path / "dota"
    picture(root / "images" / "p1.png", (100, 80))
    (root / "labelTxt").mkdir()
    (root / "labelTxt" / "p1.txt").write_text(
        "imagesource:GoogleEarth\ngsd:0.5\n10 10 30 10 30 20 10 20 small-vehicle 1\n"
        "50 50 70 50 70 60 50 60 plane 0\n"
    )
    (root / "labelTxt" / "p2.txt").write_text("1 1 2 1 2 2 1 2 plane 0\n")
    summary, annotations, classes = imported(session, storage, engine, root, "oriented_detection")
    assert summary["format"] == "dota" and summary["annotations"] == 2
    assert sorted(classes) == ["plane", "small-vehicle"]
    vehicle = next(a for a in annotations if a.attributes["difficult"] == 1)
    assert vehicle.geometry == pytest.approx({"cx": 20, "cy": 15, "w": 20, "h": 10, "angle": 0})
    row = session.exec(select(DatasetImport)).all()[-1]
    assert any("label file without image" in w["message"] for w in row.warnings)


def test_voc_flags_are_kept_and_the_box_is_converted(
    session: Session, storage: Storage, engine: Any, tmp_path: Path
) -> None:
    root = tmp_path / "voc"
    picture(root / "JPEGImages" / "a.jpg", (50, 40))
    (root / "Annotations").mkdir()
    (root / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><object><name>dog</name><truncated/>"
        "<difficult>1</difficult><bndbox><xmin>5.0</xmin><xmax>25</xmax><ymin>4</ymin>"
        "<ymax>14</ymax></bndbox></object></annotation>"
    )
    _, annotations, _ = imported(session, storage, engine, root, "detection")
    (box,) = annotations
    assert box.geometry == {"x": 5.0, "y": 4.0, "w": 20.0, "h": 10.0}
    assert box.attributes == {"difficult": 1, "truncated": 0, "occluded": 0}


def test_palette_masks_with_class_names_and_ignore(
    session: Session, storage: Storage, engine: Any, tmp_path: Path
) -> None:
    root = tmp_path / "seg"
    picture(root / "JPEGImages" / "a.jpg", (8, 6))
    index = np.zeros((6, 8), np.uint8)
    index[:, 4:] = 2
    index[0, 0] = 255
    mask = PILImage.fromarray(index, "P")
    mask.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [255, 255, 255] * 253)
    (root / "SegmentationClass").mkdir()
    mask.save(root / "SegmentationClass" / "a.png")
    (root / "class_names.txt").write_text("_background_\naeroplane\nbicycle\n")
    _, annotations, classes = imported(session, storage, engine, root, "segmentation")
    assert classes == {"background": 0, "aeroplane": 1, "bicycle": 2}
    stored = np.asarray(PILImage.open(storage.resolve(annotations[0].geometry["path"])))
    assert stored[0, 0] == 255 and stored[3, 6] == 2 and stored[3, 1] == 0
    assert sorted(a.attributes["pixels"] for a in annotations) == [23, 24]


def test_csv_multilabel_regression_and_attributes(
    session: Session, storage: Storage, engine: Any, tmp_path: Path
) -> None:
    root = tmp_path / "csv"
    for i in range(3):
        picture(root / "images" / f"{i}.jpg", seed=i)
    (root / "labels.csv").write_text(
        "filename,labels,site\n0.jpg,cat;dog,north\n1,cat,south\nimages/2.jpg,dog,north\n"
    )
    summary, annotations, classes = imported(session, storage, engine, root, "classification")
    assert summary["images"] == 3 and len(annotations) == 4 and sorted(classes) == ["cat", "dog"]
    # The import also writes the grid's index rows: the extra column as attribute rows, and
    # each image's first class for sorting.
    indexed = session.exec(select(ImageAttribute).where(ImageAttribute.key == "site")).all()
    assert sorted(row.value for row in indexed) == ["north", "north", "south"]
    rows = session.exec(select(Image).where(Image.project_id == indexed[0].project_id)).all()
    cat, dog = (
        session.exec(select(LabelClass).where(LabelClass.name == n)).one() for n in ("cat", "dog")
    )
    first = {r.original_name: r.sort_class for r in rows}
    assert first == {
        "images/0.jpg": min(cat.index, dog.index),
        "images/1.jpg": cat.index,
        "images/2.jpg": dog.index,
    }
    reg = tmp_path / "reg"
    for i in range(2):
        picture(reg / f"{i}.png", seed=i)
    (reg / "targets.csv").write_text("image,age,weight\n0.png,3,1.5\n1.png,4,2.5\n")
    summary, annotations, _ = imported(session, storage, engine, reg, "regression")
    assert sorted(a.geometry["values"] for a in annotations) == [[3.0, 1.5], [4.0, 2.5]]


def test_anomaly_folders_with_ground_truth_masks(
    session: Session, storage: Storage, engine: Any, tmp_path: Path
) -> None:
    root = tmp_path / "mvtec" / "bottle"
    picture(root / "train" / "good" / "000.png", (16, 16), 1)
    picture(root / "test" / "good" / "001.png", (16, 16), 2)
    picture(root / "test" / "crack" / "002.png", (16, 16), 3)
    gt = np.zeros((16, 16), np.uint8)
    gt[4:8, 4:8] = 255
    (root / "ground_truth" / "crack").mkdir(parents=True)
    PILImage.fromarray(gt).save(root / "ground_truth" / "crack" / "002_mask.png")
    summary, annotations, classes = imported(
        session, storage, engine, tmp_path / "mvtec", "anomaly"
    )
    assert summary["images"] == 3 and sorted(classes) == ["anomalous", "normal"]
    labels = sorted(a.kind for a in annotations)
    assert labels == ["label", "label", "label", "mask"]
    mask = next(a for a in annotations if a.kind == "mask")
    assert np.asarray(PILImage.open(storage.resolve(mask.geometry["path"]))).sum() == 16


def test_coco_compressed_rle_string_is_decoded(tmp_path: Path) -> None:
    from pycocotools import mask as coco_mask

    root = coco(tmp_path / "c")
    data = json.loads((root / "annotations" / "instances.json").read_text())
    encoded = coco_mask.encode(np.asfortranarray(np.ones((30, 40), np.uint8)))
    data["annotations"][1]["segmentation"] = {
        "counts": encoded["counts"].decode(),
        "size": [30, 40],
    }
    (root / "annotations" / "instances.json").write_text(json.dumps(data))
    result = read_source(root, "segmentation", "coco")
    rle = [a for s in result.samples for a in s.annotations if a.kind == "rle"]
    assert isinstance(rle[0].geometry["counts"], str)


def test_thumbnails_apply_exif_orientation_and_metadata_is_recorded(
    session: Session, storage: Storage, engine: Any, tmp_path: Path
) -> None:
    root = tmp_path / "exif"
    (root / "cat").mkdir(parents=True)
    photo = PILImage.new("RGB", (40, 20), (200, 10, 10))
    exif = photo.getexif()
    exif[0x0112] = 6  # rotate 90° when displayed
    photo.save(root / "cat" / "rotated.jpg", "JPEG", exif=exif.tobytes())
    project = make_project(session)
    row = DatasetImport(project_id=project.id, source=f"folder:{root}")
    session.add(row)
    session.commit()
    session.refresh(row)
    run_now(engine, storage, row.id)
    from app.models import Image

    image = session.exec(select(Image).where(Image.project_id == project.id)).one()
    assert (image.width, image.height, image.format) == (40, 20, "JPEG")
    assert image.attributes["exif_orientation"] == 6
    assert image.original_name == "cat/rotated.jpg"
    with PILImage.open(storage.resolve(image.thumb_path or "")) as thumb:
        assert thumb.size == (20, 40)
    assert (
        storage.resolve(image.stored_path).read_bytes()
        == (root / "cat" / "rotated.jpg").read_bytes()
    )
