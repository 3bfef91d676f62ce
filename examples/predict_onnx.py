#!/usr/bin/env python3
"""Predict with an AI Studio ONNX export, without AI Studio: classification and detection.

Needs only numpy, Pillow and onnxruntime. Preprocessing and the reading of the outputs come
from the export's metadata (the `<model>.json` downloaded beside it, or the same JSON stored in
the ONNX file's metadata_props under "studio.metadata"), so this script hard-codes no image
size, mean, std or output layout.

    python predict_onnx.py model.onnx img1.png img2.jpg
    python predict_onnx.py model.onnx --metadata model.json --labels truth.tsv --json
    python predict_onnx.py detector.onnx street.jpg --score-threshold 0.4 --json

Classification prints the top class per image; `--labels` (a TSV of `<image path>\t<class
name>` lines) adds the accuracy over those images. Detection prints one line per object
(class, score, x, y, w, h in the original image's pixels); the export runs one image at a time
when its metadata says `"batch": 1`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}


def load_metadata(model: Path, metadata: Path | None) -> dict:
    if metadata is not None:
        return json.loads(metadata.read_text())
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return json.loads(session.get_modelmeta().custom_metadata_map["studio.metadata"])


def preprocess(path: Path, spec: dict) -> np.ndarray:
    with Image.open(path) as image:
        image.load()
        image = ImageOps.exif_transpose(image).convert(spec.get("convert", "RGB"))
    height, width = spec["resize"]
    image = image.resize((width, height), RESAMPLE[spec["interpolation"]])
    array = np.asarray(image, dtype=np.float32)
    if spec.get("scale") == "0-1":
        array = array / np.float32(255.0)
    mean = np.asarray(spec["mean"], dtype=np.float32)
    std = np.asarray(spec["std"], dtype=np.float32)
    array = (array - mean) / std
    if spec.get("layout", "NCHW") == "NCHW":
        array = array.transpose(2, 0, 1)
    return array.astype(np.float32)


def scores_of(logits: np.ndarray, meta: dict) -> np.ndarray:
    if meta.get("multi_label"):
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def detect(session: ort.InferenceSession, path: Path, meta: dict, threshold: float) -> list[dict]:
    """One image through an exported detector: boxes come out in the model's input pixels
    (an S x S resize of the image) and go back to the original image's pixels."""
    with Image.open(path) as image:
        width, height = ImageOps.exif_transpose(image).size
    batch = preprocess(path, meta["preprocess"])[None]
    names = [o.name for o in session.get_outputs()]
    outputs = dict(
        zip(names, session.run(None, {session.get_inputs()[0].name: batch}), strict=True)
    )
    side = float(meta["input"]["shape"][-1])
    sx, sy = width / side, height / side
    found = []
    for box, score, label in zip(
        outputs["boxes"], outputs["scores"], outputs["labels"], strict=True
    ):
        if score < threshold:
            continue
        x0, y0, x1, y1 = (float(v) for v in box)
        found.append(
            {
                "class": meta["classes"][int(label)],
                "score": float(score),
                "bbox": {"x": x0 * sx, "y": y0 * sy, "w": (x1 - x0) * sx, "h": (y1 - y0) * sy},
            }
        )
    return sorted(found, key=lambda o: -o["score"])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("images", type=Path, nargs="*")
    parser.add_argument("--metadata", type=Path)
    parser.add_argument("--labels", type=Path, help="TSV: image path <TAB> class name")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--score-threshold", type=float, default=None, help="detection: keep scores ≥ this"
    )
    args = parser.parse_args(argv)

    meta = load_metadata(args.model, args.metadata)
    if meta["task"] == "detection":
        session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
        threshold = (
            args.score_threshold
            if args.score_threshold is not None
            else float(meta.get("score_threshold", 0.25))
        )
        found = {str(p): detect(session, p, meta, threshold) for p in args.images}
        if args.json:
            print(json.dumps({"predictions": found}))
        else:
            for image, objects in found.items():
                for o in objects:
                    b = o["bbox"]
                    print(
                        f"{image}\t{o['class']}\t{o['score']:.4f}\t"
                        f"{b['x']:.1f}\t{b['y']:.1f}\t{b['w']:.1f}\t{b['h']:.1f}"
                    )
        return 0
    if meta["task"] != "classification":
        print(f"this script reads classification and detection exports, not {meta['task']}")
        return 2
    classes = meta["classes"]
    truth: dict[Path, str] = {}
    if args.labels:
        for line in args.labels.read_text().splitlines():
            if line.strip():
                name, label = line.split("\t")
                truth[Path(name)] = label
    images = list(args.images) + [p for p in truth if p not in args.images]
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    predictions = []
    for start in range(0, len(images), args.batch):
        chunk = images[start : start + args.batch]
        batch = np.stack([preprocess(p, meta["preprocess"]) for p in chunk])
        logits = session.run(None, {input_name: batch})[0]
        for path, row in zip(chunk, scores_of(logits, meta), strict=True):
            best = int(row.argmax())
            predictions.append(
                {"image": str(path), "class": classes[best], "score": float(row[best])}
            )

    result: dict = {"predictions": predictions}
    if truth:
        hits = [
            p["class"] == truth[Path(p["image"])] for p in predictions if Path(p["image"]) in truth
        ]
        result["accuracy"] = sum(hits) / len(hits)
        result["correct"], result["total"] = sum(hits), len(hits)
    if args.json:
        print(json.dumps(result))
    else:
        for p in predictions:
            print(f"{p['image']}\t{p['class']}\t{p['score']:.4f}")
        if "accuracy" in result:
            print(f"accuracy {result['accuracy']:.6f} ({result['correct']}/{result['total']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
