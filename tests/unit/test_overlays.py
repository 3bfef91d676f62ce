"""Overlay shapes: an index mask shared by several classes is drawn once; a predicted mask
(base64 index PNG) becomes a transparent overlay in the class colours; predicted instances are
solid shapes in their class hue, one shade per instance, over dashed truth."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from app.overlays import mask_overlay_url, object_shapes, prediction_shapes, shade


def test_a_mask_shared_by_several_classes_is_one_shape_for_all_of_them() -> None:
    prediction = {
        "truth": [{"kind": "mask", "class": "a", "index": 1, "geometry": {}}],
        "predicted": [
            {"kind": "mask", "class": "a", "index": 1, "href": "/m.png?hide=0"},
            {"kind": "mask", "class": "b", "index": 2, "href": "/m.png?hide=0"},
            {"kind": "mask", "class": "c", "index": 3, "href": "/other.png"},
        ],
    }
    shapes = prediction_shapes(prediction, ["#000000", "#ff0000", "#00ff00", "#0000ff"])
    assert [(s["href"], s["cid"], s["role"]) for s in shapes] == [
        (None, 1, "truth"),
        ("/m.png?hide=0", None, "pred"),  # shared: no single class hides it
        ("/other.png", 3, "pred"),
    ]


def test_a_predicted_index_mask_becomes_a_coloured_overlay_with_background_clear() -> None:
    values = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    url = mask_overlay_url(data, ["#111111", "#ff0000", "#00ff00"], ["background", "a", "b"])
    assert url.startswith("data:image/png;base64,")
    rgba = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert rgba[0, 0, 3] == 0 and rgba[1, 1, 3] == 0  # background and ignore clear
    assert tuple(rgba[0, 1]) == (255, 0, 0, 255) and tuple(rgba[1, 0]) == (0, 255, 0, 255)
    assert mask_overlay_url("not base64!", ["#ff0000"], ["a"]) == ""


def test_predicted_instances_are_solid_in_their_class_hue_one_shade_each() -> None:
    square = {"points": [[0, 0], [4, 0], [4, 4]]}
    prediction = {
        "truth": [
            {"kind": "polygon", "class": "a", "index": 0, "geometry": square, "outcome": "tp"},
            {"kind": "polygon", "class": "a", "index": 0, "geometry": square, "outcome": "fn"},
        ],
        "predicted": [
            {
                "kind": "polygon",
                "class": "a",
                "index": 0,
                "geometry": square,
                "score": 0.9,
                "verdict": "tp",
                "instance": 0,
            },
            {
                "kind": "polygon",
                "class": "a",
                "index": 0,
                "geometry": square,
                "score": 0.5,
                "verdict": "fp",
                "instance": 1,
            },
        ],
    }
    shapes = prediction_shapes(prediction, ["#3366cc"])
    assert [s["role"] for s in shapes] == ["truth", "fn", "instance", "instance"]
    first, second = shapes[2], shapes[3]
    assert first["color"] == "#3366cc" and second["color"] == shade("#3366cc", 1) != "#3366cc"
    assert first["label"] == "a 0.90"
    objects = [
        {"class": "a", "index": 0, "score": 0.8, "polygon": [[0, 0], [4, 0], [4, 4]]},
        {"class": "a", "index": 0, "score": 0.7, "polygon": [[5, 5], [9, 5], [9, 9]]},
        {"class": "b", "index": 1, "score": 0.6, "bbox": {"x": 0, "y": 0, "w": 2, "h": 2}},
    ]
    drawn = object_shapes(objects, ["#3366cc", "#cc3366"])
    assert [(s["kind"], s["role"]) for s in drawn] == [
        ("polygon", "instance"),
        ("polygon", "instance"),
        ("bbox", "pred"),
    ]
    assert drawn[0]["color"] != drawn[1]["color"] and drawn[2]["color"] == "#cc3366"
    assert shade("red", 3) == "red"  # not #rrggbb: left alone
