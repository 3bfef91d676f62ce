"""Shapes for the one SVG overlay macro (templates/partials/_overlay.html); template globals.

Every overlay in the GUI — dataset viewer and grid, evaluation detail and grid, try-it — is a
list of shape dicts: {"kind", "geometry" (annotation geometry, stored-image pixels), "role",
"color", "label", "cid" (class id for visibility toggles), "href" (mask image)}. Roles:
`annotation` (the dataset's own), `truth` (ground truth beside predictions, dashed), `pred`
(a prediction without a verdict), `tp` / `fp` (matched or unmatched predictions), `fn` (a
missed truth). These helpers turn geometry into SVG attributes and predictions into shapes.
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
    for default_role, entries in groups:
        for entry in entries:
            if entry.get("kind") not in DRAWN_KINDS:
                continue
            outcome = entry.get("outcome")
            role = default_role
            if default_role == "truth" and outcome in ("fn", "confused"):
                role = "fn"  # missed, or found under another class
            elif default_role == "pred" and outcome in ("tp", "fp", "confused"):
                role = "fp" if outcome == "confused" else outcome
            shapes.append(
                {
                    "kind": entry["kind"],
                    "geometry": entry.get("geometry") or {},
                    "role": role,
                    "color": color_of(entry),
                    "label": caption(entry) if default_role == "pred" else "",
                    "cid": entry.get("index"),
                    "href": entry.get("href"),
                }
            )
    return shapes


def object_shapes(
    objects: list[dict[str, Any]], colors: list[str] | None = None
) -> list[dict[str, Any]]:
    """Shapes of predicted objects in the prediction envelope (try-it): each object's geometry
    under its own key ("bbox", "obb", "polygon")."""
    colors = colors or []
    shapes = []
    for obj in objects:
        index = obj.get("index")
        color = (
            colors[index] if isinstance(index, int) and 0 <= index < len(colors) else DEFAULT_COLOR
        )
        score = obj.get("score")
        label = (
            f"{obj.get('class', '')} {score:.2f}"
            if isinstance(score, int | float)
            else str(obj.get("class", ""))
        )
        if "polygon" in obj:
            kind, geometry = "polygon", {"points": obj["polygon"]}
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
                "role": "pred",
                "color": color,
                "label": label,
                "cid": index,
                "href": None,
            }
        )
    return shapes
