#!/usr/bin/env python3
"""Predict with an AI Studio ONNX export, without AI Studio: classification, detection,
oriented detection, semantic and instance segmentation.

Needs only numpy, Pillow and onnxruntime. Preprocessing and the reading of the outputs come
from the export's metadata (the `<model>.json` downloaded beside it, or the same JSON stored in
the ONNX file's metadata_props under "studio.metadata"), so this script hard-codes no image
size, mean, std or output layout.

    python predict_onnx.py model.onnx img1.png img2.jpg
    python predict_onnx.py model.onnx --metadata model.json --labels truth.tsv --json
    python predict_onnx.py detector.onnx street.jpg --score-threshold 0.4 --json
    python predict_onnx.py instances.onnx street.jpg   # boxes and polygons
    python predict_onnx.py seg.onnx img1.png --out-dir masks/

Classification prints the top class per image; `--labels` (a TSV of `<image path>\t<class
name>` lines) adds the accuracy over those images. Detection prints one line per object
(class, score, x, y, w, h in the original image's pixels); the export runs one image at a time
when its metadata says `"batch": 1`.

Dual-head classification exports (metadata with "segmentation" and "gate") also output
per-channel mask probabilities and the image embedding: the script applies the segmentation
gate first (the studio's rules, workers/ml/tasks/classification/dual_head/gate.py, restated
here: familiarity, foreground share range, region, channels) and gives a rejected image no
class, with the reason; `--no-gate` turns that off.

Oriented-detection exports ("task": "oriented_detection") end before NMS: `obb` [N, 5] per
location (cx, cy, w, h in input pixels, angle in radians) and `scores` [N, C]. The script
follows the metadata's "postprocess" steps: keep scores ≥ threshold, the best 300, class-wise
NMS at rotated IoU > nms_iou (exact convex-polygon clipping), the long edge as w with the angle
in [-90, 90) degrees, and the corners scaled to the original image. It prints class, score,
cx, cy, w, h, angle per object.

Instance-segmentation exports ("task": "instance_segmentation") output detection's `boxes`,
`scores`, `labels` plus `masks` [N, S, S] (probabilities pasted into the input image). Each
object scoring ≥ the threshold becomes class, score, box (as detection) and a polygon: the
outer outline of its mask's (≥ 0.5) largest 4-connected piece, traced along pixel edges from
its top-left corner clockwise, simplified by Douglas-Peucker with a tolerance of one model
pixel, scaled to the original image — the studio's rules (workers/ml/tasks/
instance_segmentation/decode.py), restated so that the outline is the studio's vertex for
vertex; an object whose mask is empty is left out. Lines end with the polygon as `x,y` pairs.

Segmentation exports (metadata "task": "segmentation") output logits [N, C, H, W]: each
class's logits are resized bilinearly to the original image size, the argmax is the class
index of each pixel; the script prints every class's share of the pixels and, with
`--out-dir`, writes `<image stem>.mask.png` (8-bit, value = class index).
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


def largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected region of a boolean mask, as a mask (a plain flood fill: no
    SciPy needed; the first found wins a tie)."""
    seen = np.zeros_like(mask, dtype=bool)
    best: list[tuple[int, int]] = []
    height, width = mask.shape
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if seen[y0, x0]:
            continue
        stack, region = [(y0, x0)], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            region.append((y, x))
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        if len(region) > len(best):
            best = region
    out = np.zeros(mask.shape, dtype=bool)
    if best:
        out[tuple(np.array(best).T)] = True
    return out


def feature_distance(embedding: np.ndarray, reference: dict | None) -> float | None:
    """RMS distance to the nearest class mean, in training standard deviations."""
    if not reference:
        return None
    means = np.asarray(reference["means"], np.float64)
    scale = np.asarray(reference["scale"], np.float64)
    z = (np.asarray(embedding, np.float64).reshape(1, -1) - means) / scale
    return float(np.sqrt((z**2).mean(axis=1)).min())


def gate(probs: np.ndarray, meta: dict, predicted: str, embedding=None) -> dict:
    """The segmentation gate on one image's channel probabilities [K, S, S] (and embedding)."""
    rules = meta["gate"]
    if meta["segmentation"]["exclusive"]:
        background = 1.0 - probs.sum(axis=0, keepdims=True)
        winner = np.concatenate([background, probs]).argmax(axis=0)
        on = np.stack([winner == k + 1 for k in range(probs.shape[0])])
    else:
        on = probs >= 0.5
    foreground = on.any(axis=0)
    ratio = float(foreground.mean())
    region = int(largest_region(foreground).sum())
    threshold = float(rules["min_ratio"].get(predicted, rules["default_min_ratio"]))
    ceiling = float((rules.get("max_ratio") or {}).get(predicted, 1.0))
    scale = (probs.shape[-1] / float(rules["reference_side"])) ** 2
    min_area = float(rules["min_component_px"]) * scale
    limit = rules.get("max_feature_distance")
    distance = None
    if embedding is not None:
        distance = feature_distance(embedding, rules.get("feature_reference"))
    if distance is not None and limit is not None and distance > float(limit):
        reason = f"unfamiliar image (feature distance {distance:.2f} > {float(limit):.2f})"
    elif ratio < threshold:
        reason = f"insufficient foreground ({ratio:.0%} < {threshold:.0%})"
    elif ratio > ceiling:
        reason = f"foreground everywhere ({ratio:.0%} > {ceiling:.0%})"
    elif region < min_area:
        reason = f"no coherent object (largest region {region} px < {min_area:.0f} px)"
    elif not on.any():
        reason = "no channel fires"
    else:
        return {"passed": True, "foreground_ratio": ratio, "largest_component": region,
                "feature_distance": distance, "reason": "foreground found"}  # fmt: skip
    return {"passed": False, "foreground_ratio": ratio, "largest_component": region,
            "feature_distance": distance, "reason": reason}  # fmt: skip


def segment(path: Path, logits: np.ndarray, classes: list, out_dir: Path | None) -> dict:
    """One image's logits [C, h, w] → its index mask at the original size, class shares."""
    with Image.open(path) as image:
        width, height = ImageOps.exif_transpose(image).size
    resized = np.stack(
        [
            np.asarray(
                Image.fromarray(c.astype(np.float32)).resize((width, height), Image.BILINEAR)
            )
            for c in logits
        ]
    )
    mask = resized.argmax(axis=0).astype(np.uint8)
    counts = np.bincount(mask.reshape(-1), minlength=len(classes))
    shares = [
        {"class": classes[i], "pixels": int(n), "fraction": float(n) / mask.size}
        for i, n in enumerate(counts)
        if n
    ]
    result = {"image": str(path), "classes": sorted(shares, key=lambda c: -c["pixels"])}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{path.stem}.mask.png"
        Image.fromarray(mask).save(target)
        result["mask"] = str(target)
    return result


def infer(session: ort.InferenceSession, path: Path, meta: dict) -> tuple[dict, int, int]:
    """One image through an export that runs one image at a time: its named outputs and the
    original image's width and height (EXIF orientation applied, as the studio does)."""
    with Image.open(path) as image:
        width, height = ImageOps.exif_transpose(image).size
    batch = preprocess(path, meta["preprocess"])[None]
    names = [o.name for o in session.get_outputs()]
    outputs = session.run(None, {session.get_inputs()[0].name: batch})
    return dict(zip(names, outputs, strict=True)), width, height


def detect(session: ort.InferenceSession, path: Path, meta: dict, threshold: float) -> list[dict]:
    """One image through an exported detector: boxes come out in the model's input pixels
    (an S x S resize of the image) and go back to the original image's pixels."""
    outputs, width, height = infer(session, path, meta)
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


def outline(mask: np.ndarray) -> np.ndarray:
    """The outer ring of a boolean mask's largest 4-connected piece, along pixel edges (pixel
    (x, y) spans x..x+1, y..y+1), one vertex per corner; empty if the mask is."""
    piece = largest_region(mask)
    if not piece.any():
        return np.zeros((0, 2))
    edges: dict[tuple[int, int], list[tuple[int, int]]] = {}
    padded = np.pad(piece, 1)
    # Each side of the piece facing outside, directed with the piece on its right (y down).
    for (dy, dx), start, step in (
        ((-1, 0), (0, 0), (1, 0)),  # top: left to right
        ((0, 1), (1, 0), (0, 1)),  # right: downwards
        ((1, 0), (1, 1), (-1, 0)),  # bottom: right to left
        ((0, -1), (0, 1), (0, -1)),  # left: upwards
    ):
        beside = padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx]
        for y, x in zip(*np.nonzero(piece & ~beside), strict=True):
            edges.setdefault((int(x) + start[0], int(y) + start[1]), []).append(step)
    y0, x0 = (int(v[0]) for v in np.nonzero(piece))
    here, heading = (x0, y0), (1, 0)
    ring: list[tuple[int, int]] = []
    while True:
        steps = edges[here]
        # Where the piece touches itself at a corner, turn left: that keeps to the outside.
        step = steps[0] if len(steps) == 1 else (heading[1], -heading[0])
        if step != heading or not ring:
            ring.append(here)
        heading = step
        here = (here[0] + step[0], here[1] + step[1])
        if here == (x0, y0):
            break
    return np.array(ring, dtype=float)


def simplify_ring(ring: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker on a closed ring, split at its first vertex and the vertex farthest
    from it; a ring that would fall under 3 vertices is kept as it is."""
    if len(ring) <= 3:
        return ring

    def keep(points: np.ndarray) -> list[int]:
        a, b = points[0], points[-1]
        d = points[1:-1] - a
        ab = b - a
        norm = float(np.hypot(*ab))
        dist = np.abs(ab[0] * d[:, 1] - ab[1] * d[:, 0]) / norm if norm else np.hypot(*d.T)
        if not len(dist) or dist.max() <= tolerance:
            return [0]
        k = int(dist.argmax()) + 1
        return keep(points[: k + 1]) + [k + i for i in keep(points[k:])]

    far = int(np.hypot(*(ring - ring[0]).T).argmax())
    closed = np.vstack([ring, ring[:1]])
    chosen = keep(closed[: far + 1]) + [far + i for i in keep(closed[far:])]
    return ring if len(chosen) < 3 else ring[chosen]


def segment_instances(
    session: ort.InferenceSession, path: Path, meta: dict, threshold: float
) -> list[dict]:
    """One image through an exported instance segmenter: objects best first, each with its box
    and the simplified outline of its mask (≥ 0.5, largest piece) in original pixels; an object
    whose mask is empty is left out, as the studio does."""
    outputs, width, height = infer(session, path, meta)
    side = float(meta["input"]["shape"][-1])
    sx, sy = width / side, height / side
    scores = outputs["scores"].reshape(-1)
    found = []
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] < threshold:
            break
        ring = outline(outputs["masks"][i] >= 0.5)
        if not len(ring):
            continue
        x0, y0, x1, y1 = (float(v) for v in outputs["boxes"][i])
        found.append(
            {
                "class": meta["classes"][int(outputs["labels"][i])],
                "score": float(scores[i]),
                "bbox": {"x": x0 * sx, "y": y0 * sy, "w": (x1 - x0) * sx, "h": (y1 - y0) * sy},
                "polygon": (simplify_ring(ring, 1.0) * [sx, sy]).round(2).tolist(),
            }
        )
    return found


def _area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _overlap(subject: np.ndarray, clipper: np.ndarray) -> float:
    """Area of the intersection of two convex polygons (Sutherland-Hodgman clipping)."""
    sign = 1.0 if _area(clipper) > 0 else -1.0
    out = list(subject)
    for i in range(len(clipper)):
        a, b = clipper[i], clipper[(i + 1) % len(clipper)]
        pts, out = out, []
        for j in range(len(pts)):
            p, q = pts[j], pts[(j + 1) % len(pts)]
            sp = sign * ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]))
            sq = sign * ((b[0] - a[0]) * (q[1] - a[1]) - (b[1] - a[1]) * (q[0] - a[0]))
            if sp >= 0:
                out.append(p)
            if sp * sq < 0:
                out.append(p + sp / (sp - sq) * (q - p))
        if len(out) < 3:
            return 0.0
    return abs(_area(np.array(out)))


def _corners(cx: float, cy: float, w: float, h: float, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    local = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    return np.stack(
        [cx + local[:, 0] * c - local[:, 1] * s, cy + local[:, 0] * s + local[:, 1] * c], 1
    )


def _le90(p: np.ndarray) -> dict:
    """A box from its (possibly stretched) corners: the first edge's length and direction,
    the height that keeps the area; the long edge as w, the angle in [-90, 90) degrees."""
    e1, e2 = p[1] - p[0], p[3] - p[0]
    w = float(np.hypot(*e1))
    h = abs(float(e1[0] * e2[1] - e1[1] * e2[0])) / w if w > 0 else 0.0
    angle = float(np.degrees(np.arctan2(e1[1], e1[0])))
    if h > w:
        w, h, angle = h, w, angle + 90
    angle = (angle + 90) % 180 - 90
    cx, cy = (float(v) for v in p.mean(0))
    return {"cx": cx, "cy": cy, "w": w, "h": h, "angle": angle}


def detect_oriented(
    session: ort.InferenceSession, path: Path, meta: dict, threshold: float
) -> list[dict]:
    """One image through an exported oriented detector, decoded as its metadata says."""
    outputs, width, height = infer(session, path, meta)
    post = meta["postprocess"]
    obb, scores = outputs["obb"][0].astype(np.float64), outputs["scores"][0].astype(np.float64)
    where, label = np.nonzero(scores >= threshold)
    value = scores[where, label]
    order = np.argsort(-value, kind="stable")[:300]
    polygons = [_corners(*obb[where[i]]) for i in order]
    areas = [abs(_area(p)) for p in polygons]
    kept: list[int] = []
    for k, i in enumerate(order):
        clash = False
        for m in kept:
            if label[order[m]] != label[i] or areas[k] <= 0 or areas[m] <= 0:
                continue
            inter = _overlap(polygons[k], polygons[m])
            if inter / (areas[k] + areas[m] - inter) > float(post["nms_iou"]):
                clash = True
                break
        if not clash:
            kept.append(k)
    side = float(meta["input"]["shape"][-1])
    scale = np.array([width / side, height / side])
    found = []
    for k in kept[: int(post["max_detections"])]:
        points = polygons[k] * scale
        found.append(
            {
                "class": meta["classes"][int(label[order[k]])],
                "score": float(value[order[k]]),
                "obb": _le90(points),
            }
        )
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("images", type=Path, nargs="*")
    parser.add_argument("--metadata", type=Path)
    parser.add_argument("--labels", type=Path, help="TSV: image path <TAB> class name")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--out-dir", type=Path, help="segmentation: write index masks here")
    parser.add_argument(
        "--score-threshold", type=float, default=None, help="detection: keep scores ≥ this"
    )
    parser.add_argument("--no-gate", action="store_true", help="dual-head: skip the gate")
    args = parser.parse_args(argv)

    meta = load_metadata(args.model, args.metadata)
    if meta["task"] in ("detection", "oriented_detection", "instance_segmentation"):
        session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
        threshold = (
            args.score_threshold
            if args.score_threshold is not None
            else float(meta.get("score_threshold", 0.25))
        )
        oriented = meta["task"] == "oriented_detection"
        run = {"detection": detect, "oriented_detection": detect_oriented}.get(
            meta["task"], segment_instances
        )
        found = {str(p): run(session, p, meta, threshold) for p in args.images}
        if args.json:
            print(json.dumps({"predictions": found}))
            return 0
        for image, objects in found.items():
            for o in objects:
                g = o["obb"] if oriented else o["bbox"]
                keys = ("cx", "cy", "w", "h", "angle") if oriented else ("x", "y", "w", "h")
                place = "\t".join(f"{g[k]:.1f}" for k in keys)
                if "polygon" in o:
                    place += "\t" + " ".join(f"{x:.1f},{y:.1f}" for x, y in o["polygon"])
                print(f"{image}\t{o['class']}\t{o['score']:.4f}\t{place}")
        return 0
    if meta["task"] == "segmentation":
        session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        results = []
        for path in args.images:
            batch = preprocess(path, meta["preprocess"])[None]
            logits = session.run(None, {name: batch})[0][0]
            results.append(segment(path, logits, meta["classes"], args.out_dir))
        if args.json:
            print(json.dumps({"predictions": results}))
        else:
            for r in results:
                parts = ", ".join(f"{c['class']} {c['fraction']:.1%}" for c in r["classes"])
                print(f"{r['image']}\t{parts}")
        return 0
    if meta["task"] != "classification":
        print(
            "this script reads classification, (oriented) detection, segmentation and "
            "instance segmentation, "
            f"not {meta['task']}"
        )
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
        outputs = session.run(None, {input_name: batch})
        for index, (path, row) in enumerate(zip(chunk, scores_of(outputs[0], meta), strict=True)):
            best = int(row.argmax())
            answer = {"image": str(path), "class": classes[best], "score": float(row[best])}
            if meta.get("gate") and len(outputs) > 1:
                embedding = outputs[2][index] if len(outputs) > 2 else None
                answer["gate"] = gate(outputs[1][index], meta, classes[best], embedding)
                if not answer["gate"]["passed"] and not args.no_gate:
                    answer["class"] = None
            predictions.append(answer)

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
            verdict = f"\tgate: {p['gate']['reason']}" if "gate" in p else ""
            print(f"{p['image']}\t{p['class']}\t{p['score']:.4f}{verdict}")
        if "accuracy" in result:
            print(f"accuracy {result['accuracy']:.6f} ({result['correct']}/{result['total']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
