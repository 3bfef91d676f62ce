"""Shapes for the one SVG overlay macro (templates/partials/_overlay.html); template globals.

Every overlay in the GUI — dataset viewer and grid, evaluation detail and grid, try-it — is a
list of shape dicts: {"kind", "geometry" (annotation geometry, stored-image pixels), "role",
"color", "label", "cid" (class id for visibility toggles), "href" (mask image)}. Roles:
`annotation` (the dataset's own), `truth` (ground truth beside predictions, dashed), `pred`
(a prediction without a verdict), `tp` / `fp` (matched or unmatched predictions), `fn` (a
missed truth), `instance` (a predicted object's mask outline, filled solid in its class hue,
one shade per instance so neighbours of one class stay apart). These helpers turn geometry
into SVG attributes and predictions into shapes.
"""

from __future__ import annotations

import math
from typing import Any

DEFAULT_COLOR = "#f59e0b"
DRAWN_KINDS = ("bbox", "polygon", "obb", "mask")


def obb_points(g: dict[str, Any]) -> str:
    """The four corners of a rotated box (angle in degrees) as an SVG points list."""
    try:
        cx, cy, w, h = (float(g.get(k, 0)) for k in ("cx", "cy", "w", "h"))
        angle = math.radians(float(g.get("angle", 0)))
    except (TypeError, ValueError):
        return ""
    cos, sin = math.cos(angle), math.sin(angle)
    corners = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        corners.append(f"{cx + dx * cos - dy * sin:.2f},{cy + dx * sin + dy * cos:.2f}")
    return " ".join(corners)


def ring_path(g: dict[str, Any]) -> str:
    """Polygon rings ({"points"} or {"rings"}) as one SVG path (even-odd holes)."""
    rings = g.get("rings") or [g.get("points", [])]
    parts = []
    for ring in rings:
        points = [p for p in ring if isinstance(p, list | tuple) and len(p) >= 2]
        if len(points) >= 2:
            head, *rest = points
            try:
                parts.append(
                    f"M{float(head[0]):.2f},{float(head[1]):.2f} "
                    + " ".join(f"L{float(x):.2f},{float(y):.2f}" for x, y, *_ in rest)
                    + " Z"
                )
            except (TypeError, ValueError):
                continue
    return " ".join(parts)


def box(g: dict[str, Any]) -> dict[str, float] | None:
    try:
        return {k: float(g[k]) for k in ("x", "y", "w", "h")}
    except (KeyError, TypeError, ValueError):
        return None


SHADES = (1.0, 0.7, 1.3, 0.55, 1.15, 0.85)


def shade(color: str, number: int) -> str:
    """The class colour darkened or lightened for the `number`-th instance (#rrggbb only)."""
    factor = SHADES[number % len(SHADES)]
    if factor == 1.0 or len(color) != 7 or not color.startswith("#"):
        return color
    try:
        rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    except ValueError:
        return color
    if factor < 1:
        mixed = [round(c * factor) for c in rgb]
    else:
        mixed = [round(c + (255 - c) * (factor - 1)) for c in rgb]
    return "#" + "".join(f"{min(255, max(0, c)):02x}" for c in mixed)


def label_anchor(kind: str, g: dict[str, Any]) -> tuple[float, float] | None:
    """Where a shape's caption goes: above a box's top-left corner, above a rotated box."""
    try:
        if kind == "bbox":
            return float(g["x"]), float(g["y"])
        if kind == "obb":
            return float(g["cx"]), float(g["cy"]) - float(g["h"]) / 2
        if kind == "polygon":
            points = (g.get("rings") or [g.get("points", [])])[0]
            return float(min(p[0] for p in points)), float(min(p[1] for p in points))
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return None


def prediction_shapes(
    prediction: dict[str, Any], colors: list[str] | None = None, *, truth: bool = True
) -> list[dict[str, Any]]:
    """Shapes of an evaluation result's prediction JSON ({"truth": [...], "predicted": [...]},
    each entry {"kind", "class", "index", "geometry", "score"?, "outcome"?}): truth first
    (dashed, or `fn` when missed), predictions on top coloured by their outcome."""
    colors = colors or []
    shapes: list[dict[str, Any]] = []

    def color_of(entry: dict[str, Any]) -> str:
        index = entry.get("index")
        if isinstance(index, int) and 0 <= index < len(colors) and colors[index]:
            return colors[index]
        return DEFAULT_COLOR

    def caption(entry: dict[str, Any]) -> str:
        name = str(entry.get("class", ""))
        score = entry.get("score")
        return f"{name} {score:.2f}" if isinstance(score, int | float) else name

    groups = [("truth", prediction.get("truth") or [])] if truth else []
    groups.append(("pred", prediction.get("predicted") or []))
    drawn: dict[str, dict[str, Any]] = {}
    for default_role, entries in groups:
        for entry in entries:
            if entry.get("kind") not in DRAWN_KINDS:
                continue
            href = entry.get("href")
            if entry["kind"] == "mask" and href in drawn:
                # Several classes sharing one index mask: draw it once, for every class.
                drawn[href]["cid"] = None
                continue
            outcome = entry.get("outcome")
            role = default_role
            if default_role == "truth" and outcome in ("fn", "confused"):
                role = "fn"  # missed, or found under another class
            elif default_role == "pred" and outcome in ("tp", "fp", "confused"):
                role = "fp" if outcome == "confused" else outcome
            color = color_of(entry)
            number = entry.get("instance")
            if default_role == "pred" and isinstance(number, int):
                role, color = "instance", shade(color, number)
            shape = {
                "kind": entry["kind"],
                "geometry": entry.get("geometry") or {},
                "role": role,
                "color": color,
                "label": caption(entry) if default_role == "pred" else "",
                "cid": entry.get("index"),
                "href": href,
            }
            if entry["kind"] == "mask" and href:
                drawn[href] = shape
            shapes.append(shape)
    return shapes


def mask_overlay_url(data: str, colors: list[str], classes: list[str]) -> str:
    """A predicted index mask (base64 PNG, value = class index) as a data URL of a
    transparent overlay in the class colours, background classes clear."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    from app.services.image_files import colorize_mask, is_background_name

    try:
        with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as picture:
            values = np.asarray(picture).astype(np.int64)
    except (ValueError, OSError):
        return ""
    if values.ndim != 2:
        return ""
    palette = {
        i: ("" if i < len(classes) and is_background_name(classes[i]) else color)
        for i, color in enumerate(colors)
    }
    png, _ = colorize_mask(values, palette)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def object_shapes(
    objects: list[dict[str, Any]], colors: list[str] | None = None
) -> list[dict[str, Any]]:
    """Shapes of predicted objects in the prediction envelope (try-it): each object's geometry
    under its own key ("bbox", "obb", "polygon")."""
    colors = colors or []
    shapes = []
    seen: dict[Any, int] = {}
    for obj in objects:
        index = obj.get("index")
        color = (
            colors[index] if isinstance(index, int) and 0 <= index < len(colors) else DEFAULT_COLOR
        )
        role = "pred"
        score = obj.get("score")
        label = (
            f"{obj.get('class', '')} {score:.2f}"
            if isinstance(score, int | float)
            else str(obj.get("class", ""))
        )
        if "polygon" in obj:  # an instance's mask outline: solid, one shade per instance
            kind, geometry = "polygon", {"points": obj["polygon"]}
            seen[index] = seen.get(index, -1) + 1
            role, color = "instance", shade(color, seen[index])
        elif "obb" in obj:
            kind, geometry = "obb", obj["obb"]
        elif "bbox" in obj:
            kind, geometry = "bbox", obj["bbox"]
        else:
            continue
        shapes.append(
            {
                "kind": kind,
                "geometry": geometry,
                "role": role,
                "color": color,
                "label": label,
                "cid": index,
                "href": None,
            }
        )
    return shapes
