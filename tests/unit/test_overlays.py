"""Overlay shapes: an index mask shared by several classes is drawn once; a predicted mask
(base64 index PNG) becomes a transparent overlay in the class colours."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from app.overlays import mask_overlay_url, prediction_shapes


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
