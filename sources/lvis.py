"""LVIS v1 -> category-recognition samples (Osprey-style prompts).

LVIS ships no images: it uses the COCO 2017 ones (its val split takes images from both COCO
folders), so the COCO folder may be the root itself or a declared media root shared with other
sources (`lvis: {annotations: /data/lvis, media: [/data/coco]}`). Each image's path comes from its `coco_url` (`.../<folder>/<file>`), never from `file_name`.
Per image, up to 20 annotations (ascending id) become one multi-turn sample, "What is the
category of <obj0>? ..." answered by the normalised name (`car_(automobile)` -> `car`);
`neg_category_ids` / `not_exhaustive_category_ids` go to `meta` untouched (LVIS labels are
federated: an absent category is not a negative). An image id listed twice is a
`duplicate_image_id` reject (its annotations cannot be placed). Memory and units: see `sources.coco`.

    pixelrefer ingest --source lvis --root /data/lvis --out out/
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas import Reject
from sources.coco import RecognitionAdapter, fixture_annotation
from sources.fixtures import Rect, rect_polygon, write_image, write_json

_LICENSE = "CC-BY-4.0"


class LvisAdapter(RecognitionAdapter):
    name = "lvis"
    version = "2"
    license = f"{_LICENSE} (annotations); images under the COCO terms"
    LAYOUT = """\
lvis_v1_train.json
lvis_v1_val.json
train2017/000000000009.jpg ...     (COCO 2017 images: here or in a declared media root)
val2017/000000000139.jpg ...
"""
    files = {
        "lvis_v1_train.json": ("train", "train", _LICENSE),
        "lvis_v1_val.json": ("val", "val", _LICENSE),
    }

    def image_path(self, image: dict[str, Any], file: str, locator: str) -> str:
        url = image.get("coco_url")
        if not isinstance(url, str) or url.count("/") < 1:
            raise Reject("no_image_path", f"coco_url {url!r} names no <folder>/<file>", locator)
        return "/".join(url.split("/")[-2:])

    def write_fixture(self, root: Path) -> None:
        write_fixture(root)


_CATEGORIES = [
    {"id": 3, "name": "trash_can", "synonyms": ["trash_can"], "synset": "ashcan.n.01", "frequency": "c"},
    {"id": 5, "name": "bow_(weapon)", "synonyms": ["bow_(weapon)"], "synset": "bow.n.04", "frequency": "r"},
    {"id": 207, "name": "car_(automobile)", "synonyms": ["car_(automobile)", "auto"], "synset": "car.n.01", "frequency": "f"},
]
# image 1 (val2017): two objects, the second drawn as two polygon rings that merge
VAL_RECTS: list[Rect] = [(4, 4, 24, 20), (30, 10, 60, 40)]
# image 2: an LVIS val image that lives in train2017
TRAIN2017_RECT: Rect = (8, 8, 40, 24)
# image 5 (train): 21 objects on a 7x3 grid, so they need two samples of <= 20 regions
GRID_RECTS: list[Rect] = [(2 + 13 * c, 2 + 20 * r, 12 + 13 * c, 18 + 20 * r) for r in range(3) for c in range(7)]


def _image(image_id: int, folder: str, width: int, height: int, **extra: Any) -> dict[str, Any]:
    return {"id": image_id, "coco_url": f"http://images.cocodataset.org/{folder}/{image_id:012d}.jpg",
            "width": width, "height": height, "neg_category_ids": [], "not_exhaustive_category_ids": [], **extra}


def write_fixture(root: Path) -> None:
    """Two LVIS files with traps: a val image in train2017, `_(...)` names, a two-ring polygon,
    a 4-number ring (invalid_polygon), a missing image, a zero-byte image, an orphan annotation."""
    (x0, y0, x1, y1) = VAL_RECTS[1]
    split_b = [rect_polygon((x0, y0, 45, y1)), rect_polygon((45, y0, x1, y1))]
    write_image(root / "val2017/000000000001.jpg", 64, 48, VAL_RECTS, seed=1)
    write_image(root / "train2017/000000000002.jpg", 48, 32, [TRAIN2017_RECT], seed=2)
    (root / "val2017/000000000004.jpg").write_bytes(b"")
    write_json(root / "lvis_v1_val.json", {
        "info": {"description": "pixelrefer-data LVIS fixture"}, "licenses": [], "categories": _CATEGORIES,
        "images": [
            _image(1, "val2017", 64, 48, neg_category_ids=[5], not_exhaustive_category_ids=[3]),
            _image(2, "train2017", 48, 32),
            _image(3, "val2017", 32, 32),
            _image(4, "val2017", 32, 32),
        ],
        "annotations": [
            fixture_annotation(10, 1, 207, VAL_RECTS[0]),
            fixture_annotation(11, 1, 3, VAL_RECTS[1], split_b),
            fixture_annotation(12, 2, 5, TRAIN2017_RECT),
            fixture_annotation(13, 2, 3, (1, 1, 5, 5), [[1.0, 1.0, 5.0, 5.0]]),
            fixture_annotation(14, 3, 3, (0, 0, 8, 8)),
            fixture_annotation(15, 4, 3, (0, 0, 8, 8)),
            fixture_annotation(16, 99, 3, (0, 0, 8, 8)),
        ],
    })
    write_image(root / "train2017/000000000005.jpg", 96, 64, GRID_RECTS, seed=5)
    write_json(root / "lvis_v1_train.json", {
        "info": {"description": "pixelrefer-data LVIS fixture"}, "licenses": [], "categories": _CATEGORIES,
        "images": [_image(5, "train2017", 96, 64)],
        "annotations": [fixture_annotation(100 + i, 5, (3, 5, 207)[i % 3], rect) for i, rect in enumerate(GRID_RECTS)],
    })
