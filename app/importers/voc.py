"""Pascal VOC XML (parsed with defusedxml): boxes with difficult/truncated/occluded flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from app.importers import Importer, register_importer
from app.importers.base import (
    LIMITS,
    ImportProblem,
    ReadResult,
    Sample,
    SampleAnnotation,
    finite,
    read_text,
    rel,
    subset_of,
    walk_files,
)
from app.importers.csvfile import ImageIndex

FLAGS = ("difficult", "truncated", "occluded")


def _xmls(root: Path) -> list[Path]:
    return [p for p in walk_files(root) if p.suffix.lower() == ".xml"]


def detect(root: Path, task_type: str) -> float:
    for path in _xmls(root)[:5]:
        with path.open("rb") as handle:
            if b"<annotation" in handle.read(2048):
                return 0.95
    return 0.0


def class_list(root: Path) -> list[str]:
    """Declared classes: VOC labelmap.txt (`name:r,g,b::`) or labelme's class_names.txt."""
    for name in ("labelmap.txt", "class_names.txt"):
        path = root / name
        if path.is_file() and not path.is_symlink():
            names = []
            for line in read_text(path).splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    names.append(line.split(":", 1)[0].strip())
            return [n for n in names if n and n != "_background_"]
    return []


def _parse(path: Path) -> Element:
    text = read_text(path, LIMITS.text_bytes)
    try:
        return ElementTree.fromstring(text, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise ImportProblem(
            f"{path.name} uses forbidden XML features ({type(exc).__name__}); DTDs and "
            "entities are refused.",
            code="unsafe_xml",
        ) from None
    except ElementTree.ParseError as exc:
        raise ValueError(f"not valid XML ({exc})") from None


def _flag(obj: Element, name: str) -> int:
    text = (obj.findtext(name) or "").strip()
    try:
        return int(float(text)) if text else 0
    except ValueError:
        return 0


def read(root: Path, task_type: str) -> ReadResult:
    result = ReadResult(format="voc", samples=[], classes=class_list(root))
    index = ImageIndex(root)
    for path in _xmls(root):
        name = rel(root, path)
        try:
            tree = _parse(path)
        except ValueError as exc:
            result.warn(name, f"{exc}; skipped")
            continue
        if tree.tag != "annotation":
            continue
        filename = (tree.findtext("filename") or "").strip()
        image = None
        for folder in (path.parent, root / "JPEGImages", path.parent.parent / "JPEGImages"):
            image = index.find(filename, folder) if filename else None
            if image is not None:
                break
        if image is None:
            image = index.find(path.stem, path.parent)
        if image is None:
            result.warn(name, f"image {filename or path.stem!r} not found; annotation skipped")
            continue
        sample = Sample(rel(root, image), subset=subset_of(path.parent.name))
        for obj in tree.iter("object"):
            label = (obj.findtext("name") or "").strip()
            box = obj.find("bndbox")
            if not label or box is None:
                result.warn(name, "object without name or bndbox; skipped")
                continue
            try:
                coords: dict[str, Any] = {
                    k: finite(box.findtext(k) or "") for k in ("xmin", "ymin", "xmax", "ymax")
                }
            except ValueError as exc:
                result.warn(name, f"object {label!r}: bad coordinate ({exc}); skipped")
                continue
            if label not in result.classes:
                result.classes.append(label)
            sample.annotations.append(
                SampleAnnotation(
                    "bbox",
                    label,
                    {
                        "x": coords["xmin"],
                        "y": coords["ymin"],
                        "w": coords["xmax"] - coords["xmin"],
                        "h": coords["ymax"] - coords["ymin"],
                    },
                    {flag: _flag(obj, flag) for flag in FLAGS},
                )
            )
        result.samples.append(sample)
    return result


register_importer(
    Importer(
        key="voc",
        title="Pascal VOC XML (boxes)",
        detect=detect,
        read=read,
        tasks=("detection", "oriented_detection"),
    )
)
