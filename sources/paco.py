"""PACO (PACO-LVIS and PACO-Ego4D) -> object and part recognition samples.

The annotation files are found where the release unpacks them (`annotations/` under the root,
as facebookresearch/paco's README lays out `paco/annotations/paco_lvis_v1_*.json`) or directly
under the root. PACO-LVIS `file_name`s include the COCO folder (`val2017/...`), so the COCO
2017 images may live in a declared media root shared with LVIS; PACO-Ego4D ones are relative
to the frames folder the Ego4D CLI writes for `--datasets paco_frames`, found as `paco_frames/`
under the root or any media root (see `LAYOUT`).

An annotation is an object when `id == obj_ann_id`, else a part of that object. Part names
`object:part` are answered as "object part" (`handbag:zip` -> `handbag zip`, the form Osprey's
PACO evaluation compares against). An empty segmentation (frequent in Ego4D) keeps its box as a
box prompt; no mask is invented. Attribute ids, `unknown_*` flags set to 1, and the object/part
kind go to `meta["regions"]`. Up to 20 regions per sample; memory and units: see `sources.coco`.

    pixelrefer ingest --source paco --root /data/paco --out out/
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from schemas import Reject, masks
from sources.coco import RecognitionAdapter, fixture_annotation
from sources.fixtures import Rect, rect_mask, rect_polygon, write_image, write_json

FRAMES = "paco_frames"
_UNKNOWN = ("unknown_color", "unknown_pattern_marking", "unknown_material", "unknown_transparency")
_LVIS_LICENSE = "PACO-annotations (MIT repository; no separate data licence stated)"
_EGO4D_LICENSE = "Ego4D-license"


class PacoAdapter(RecognitionAdapter):
    name = "paco"
    version = "2"
    license = f"{_LVIS_LICENSE}; Ego4D frames under the Ego4D licence"
    LAYOUT = """\
annotations/paco_lvis_v1_{train,val,test}.json      (or these files directly under the root)
annotations/paco_ego4d_v1_{train,val,test}.json
train2017/  val2017/      (COCO 2017 images, for PACO-LVIS: here or in a declared media root)
paco_frames/              (Ego4D frames, for PACO-Ego4D: here or in a declared media root)
"""
    annotation_dirs = ("annotations", "")
    files = {
        f"paco_{family}_v1_{split}.json": (f"{family}_{split}", split, _LVIS_LICENSE if family == "lvis" else _EGO4D_LICENSE)
        for family in ("lvis", "ego4d")
        for split in ("train", "val", "test")
    }
    box_if_unsegmented = True
    system_prompt = RecognitionAdapter.system_prompt + (
        " The region may be a whole object or a part of one; name a part as the object followed by the part, "
        "e.g. 'handbag zip'."
    )

    def image_path(self, image: dict[str, Any], file: str, locator: str) -> str:
        name = image.get("file_name")
        if not isinstance(name, str) or not name:
            raise Reject("no_image_path", f"file_name {name!r} is not a path", locator)
        return name if Path(file).name.startswith("paco_lvis") else f"{FRAMES}/{name}"

    def region_meta(self, ann: dict[str, Any]) -> dict[str, Any]:
        meta = super().region_meta(ann)
        meta["obj_ann_id"] = ann.get("obj_ann_id")
        meta["kind"] = "object" if ann["id"] == ann.get("obj_ann_id") else "part"
        meta["attribute_ids"] = ann.get("attribute_ids", [])
        meta["unknown"] = [flag for flag in _UNKNOWN if ann.get(flag) == 1]
        if "instance_id" in ann:
            meta["instance_id"] = ann["instance_id"]
        return meta

    def write_fixture(self, root: Path) -> None:
        write_fixture(root)


_CATEGORIES = [
    {"id": 23, "name": "trash_can", "supercategory": "OBJECT", "synset": "ashcan.n.01"},
    {"id": 35, "name": "handbag", "supercategory": "OBJECT", "synset": "bag.n.04"},
    {"id": 50, "name": "mug", "supercategory": "OBJECT", "synset": "mug.n.04"},
    {"id": 2455, "name": "handbag:zip", "supercategory": "PART"},
    {"id": 2456, "name": "handbag:handle", "supercategory": "PART"},
    {"id": 2500, "name": "mug:handle", "supercategory": "PART"},
]
HANDBAG, ZIP, TRASH_CAN = (4, 4, 40, 40), (10, 6, 30, 12), (44, 8, 60, 40)
MUG, MUG_HANDLE = (6, 6, 26, 26), (26, 10, 32, 20)


def _uncompressed_rle(width: int, height: int, rect: Rect) -> dict[str, Any]:
    """COCO iscrowd-style RLE: run lengths over the column-major pixels, starting with zeros."""
    flat = rect_mask(width, height, rect).flatten(order="F")
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    runs = np.diff(np.concatenate([[0], edges, [flat.size]]))
    return {"size": [height, width], "counts": [int(r) for r in runs if r]}


def _ann(ann_id: int, obj_ann_id: int, image_id: int, category_id: int, rect: Rect, segmentation: Any, **extra: Any) -> dict[str, Any]:
    extra = {"attribute_ids": [], **{flag: 0 for flag in _UNKNOWN}, **extra}
    return fixture_annotation(ann_id, image_id, category_id, rect, segmentation, obj_ann_id=obj_ann_id, **extra)


def _image(image_id: int, file_name: str, width: int, height: int) -> dict[str, Any]:
    return {"id": image_id, "file_name": file_name, "width": width, "height": height,
            "neg_category_ids": [], "not_exhaustive_category_ids": []}


def write_fixture(root: Path) -> None:
    """PACO-LVIS val (object + polygon, part + uncompressed RLE, box-only object, wrong-size RLE,
    missing image) and PACO-Ego4D train (compressed RLE object, polygon part)."""
    write_image(root / "val2017/000000000042.jpg", 64, 48, [HANDBAG, ZIP, TRASH_CAN], seed=42)
    write_json(root / "annotations/paco_lvis_v1_val.json", {
        "info": {"description": "pixelrefer-data PACO fixture"}, "categories": _CATEGORIES, "attributes": [],
        "images": [_image(42, "val2017/000000000042.jpg", 64, 48), _image(43, "val2017/000000000043.jpg", 32, 32)],
        "annotations": [
            _ann(7, 7, 42, 35, HANDBAG, [rect_polygon(HANDBAG)], attribute_ids=[0, 44], unknown_transparency=1),
            _ann(8, 7, 42, 2455, ZIP, _uncompressed_rle(64, 48, ZIP), attribute_ids=[3]),
            _ann(9, 9, 42, 23, TRASH_CAN, []),
            _ann(10, 7, 42, 2456, (4, 0, 40, 4), {"size": [10, 10], "counts": [100]}),
            _ann(11, 11, 43, 23, (0, 0, 8, 8), [rect_polygon((0, 0, 8, 8))]),
        ],
    })
    write_image(root / FRAMES / "a1b2c3_000150.jpeg", 40, 32, [MUG, MUG_HANDLE], seed=150)
    write_json(root / "annotations/paco_ego4d_v1_train.json", {
        "info": {"description": "pixelrefer-data PACO fixture"}, "categories": _CATEGORIES, "attributes": [],
        "images": [_image(500, "a1b2c3_000150.jpeg", 40, 32)],
        "annotations": [
            _ann(70, 70, 500, 50, MUG, masks.encode(rect_mask(40, 32, MUG)), instance_id="a1b2c3_mug_0", blur_level=0),
            _ann(71, 70, 500, 2500, MUG_HANDLE, [rect_polygon(MUG_HANDLE)], instance_id="a1b2c3_mug_0", blur_level=1),
        ],
    })
