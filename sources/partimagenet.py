"""PartImageNet (part masks on 158 ImageNet classes) -> part recognition samples.

Origin: He et al., "PartImageNet: A Large, High-Quality Dataset of Parts" (ECCV 2022), release
at github.com/TACJu/PartImageNet (`PartImageNet_OOD`): COCO-style `train.json`, `val.json`,
`test.json` (images, annotations with polygon segmentations, and 40 part categories named
"<super-category> <part>", e.g. `Quadruped Head`, `Car Side Mirror`) over `images/<split>/`.

Labels are the category names in lower case, as "object part" (`quadruped head`), with the
release's `Tier` spelled `tire` (`Car Tier` -> `car tire`: the README's part table lists "Tier"
for the wheels of cars and bicycles). Per image, up to 20 parts (ascending annotation id) make one
"What is the category of <obj0>?" sample, as for LVIS and PACO (`sources.coco.RecognitionAdapter`);
an annotation without a segmentation is rejected (no mask is made from its box).

    pixelrefer ingest --source partimagenet --root /data/PartImageNet --out out/
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas import Reject, Region
from sources.coco import CocoIndex, RecognitionAdapter, fixture_annotation
from sources.fixtures import write_image, write_json

_LICENSE = "PartImageNet annotations (no licence stated); images under the ImageNet terms"
_SPELLING = {"tier": "tire"}


def part_label(name: str) -> str:
    """`Quadruped Head` -> `quadruped head`; `Car Tier` -> `car tire`."""
    return " ".join(_SPELLING.get(word, word) for word in name.lower().split())


class PartImageNetAdapter(RecognitionAdapter):
    name = "partimagenet"
    version = "1"
    license = _LICENSE
    LAYOUT = """\
annotations/train.json  annotations/val.json  annotations/test.json   (or these files directly under the root)
images/train/  images/val/  images/test/                               (here or in a declared media root)
"""
    annotation_dirs = ("annotations", "")
    files = {f"{split}.json": (split, split, _LICENSE) for split in ("train", "val", "test")}
    system_prompt = RecognitionAdapter.system_prompt + (
        " Every region is a part of an object; name it as the kind of object followed by the part, e.g. 'quadruped head'."
    )

    def image_path(self, image: dict[str, Any], file: str, locator: str) -> str:
        name = image.get("file_name")
        if not isinstance(name, str) or not name:
            raise Reject("no_image_path", f"file_name {name!r} is not a path", locator)
        return f"images/{Path(file).stem}/{name}"

    def image_meta(self, image: dict[str, Any]) -> dict[str, Any]:
        return {}  # no federated-label lists in PartImageNet

    def _region(self, index: CocoIndex, ann: dict[str, Any], width: int, height: int, locator: str) -> list[tuple[dict, Region]]:
        return [(a, r.model_copy(update={"label": part_label(r.label or "")}))
                for a, r in super()._region(index, ann, width, height, locator)]

    def write_fixture(self, root: Path) -> None:
        write_fixture(root)


_CATEGORIES = [
    {"id": 0, "name": "Quadruped Head", "supercategory": "Quadruped"},
    {"id": 1, "name": "Quadruped Body", "supercategory": "Quadruped"},
    {"id": 17, "name": "Car Tier", "supercategory": "Car"},
    {"id": 18, "name": "Car Side Mirror", "supercategory": "Car"},
]
HEAD, BODY = (4, 4, 16, 14), (16, 8, 44, 28)
TIRE, MIRROR = (6, 20, 14, 28), (30, 4, 36, 8)


def _image(image_id: int, file_name: str, width: int, height: int) -> dict[str, Any]:
    return {"id": image_id, "file_name": file_name, "width": width, "height": height}


def write_fixture(root: Path) -> None:
    """train.json (a quadruped with head and body, a 4-number ring, an unknown category, an
    unsegmented part, a missing image) and val.json (a car, an image of the wrong size)."""
    write_image(root / "images/train/n02085620_1.JPEG", 48, 32, [HEAD, BODY], seed=1)
    write_json(root / "annotations/train.json", {
        "info": {"description": "pixelrefer-data PartImageNet fixture"}, "categories": _CATEGORIES,
        "images": [_image(1, "n02085620_1.JPEG", 48, 32), _image(2, "n02085620_2.JPEG", 48, 32)],
        "annotations": [
            fixture_annotation(1, 1, 0, HEAD, iscrowd=0),
            fixture_annotation(2, 1, 1, BODY, iscrowd=0),
            fixture_annotation(3, 1, 1, (1, 1, 5, 5), [[1.0, 1.0, 5.0, 5.0]], iscrowd=0),
            fixture_annotation(4, 1, 99, HEAD, iscrowd=0),
            fixture_annotation(5, 1, 0, HEAD, [], iscrowd=0),
            fixture_annotation(6, 2, 0, HEAD, iscrowd=0),
        ],
    })
    write_image(root / "images/val/n02814533_7.JPEG", 40, 32, [TIRE, MIRROR], seed=7)
    write_image(root / "images/val/n02814533_8.JPEG", 40, 32, [TIRE], seed=8)
    write_json(root / "annotations/val.json", {
        "info": {"description": "pixelrefer-data PartImageNet fixture"}, "categories": _CATEGORIES,
        "images": [_image(7, "n02814533_7.JPEG", 40, 32), _image(8, "n02814533_8.JPEG", 48, 32)],
        "annotations": [fixture_annotation(70, 7, 17, TIRE, iscrowd=0), fixture_annotation(71, 7, 18, MIRROR, iscrowd=0),
                        fixture_annotation(80, 8, 17, TIRE, iscrowd=0)],
    })
