"""The contract of a benchmark loader: a benchmark's release file -> unified samples, as an adapter.

A benchmark loader is a `sources.base.Adapter` (units, records, outcomes, write_fixture), so a
broken record becomes a counted reject with its reason instead of silently shrinking the test
set. Benchmarks are small (at most a few thousand records), so each is one unit: the whole
annotation file, read at once. Each sample holds the official evaluation prompt as its user turn
and the reference answer as its assistant turn; what scoring needs besides (options, question
types, judge references) is in `meta`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from pipelines.errors import UserError
from schemas import Reject, Sample, masks
from sources.base import Adapter, Unit
from sources.common import find_media, image_size, segmentation_rle
from sources.roots import Roots

# Where a COCO image named by a benchmark may be: as named, then the COCO 2017 folders, then
# Osprey's flat folder (PixelRefer's loader looks in train2017 and val2017).
COCO_FOLDERS = ("", "train2017", "val2017", "coco_imgs")


class BenchmarkLoader(Adapter):
    """Base of the benchmark loaders: one annotation file, one unit, one sample per scored item."""

    FILE: ClassVar[str] = ""  # the annotation file, relative to the root
    subset: ClassVar[str] = "test"
    version = "1"

    def units(self, roots: Roots) -> list[Unit]:
        path = roots.annotations / self.FILE
        if not path.is_file():
            raise UserError(f"no {self.FILE} under {roots.annotations}", "--root", f"point --root at the benchmark folder:\n{self.LAYOUT}")
        return [Unit(self.name, self.FILE, {"file": self.FILE})]

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        path = roots.annotations / unit.spec["file"]
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise UserError(f"{path} is not valid JSON ({err})", str(path), "download the benchmark file again") from None
        yield from ((f"{unit.spec['file']}[{i}]", (i, record)) for i, record in enumerate(self.items(data)))

    def items(self, data: Any) -> list[Any]:
        """The scored items of the parsed file (a list of records, by default)."""
        if not isinstance(data, list):
            raise UserError(f"{self.FILE} holds a {type(data).__name__}, not a list", self.FILE, "download the benchmark file again")
        return data

    def load(self, roots: Roots) -> tuple[list[Sample], list[Reject]]:
        """Every sample of the benchmark, and the records that could not become one."""
        samples, rejects = [], []
        for unit in self.units(roots):
            for outcome in self.convert(roots, unit):
                (samples if isinstance(outcome, Sample) else rejects).append(outcome)
        return samples, rejects

    def item_sample(self, *, native_id: str | int, locator: str, task: str, media: dict, regions: list[dict],
                    question: str, answer: str, meta: dict | None = None) -> Sample:
        """The validated sample of one scored item: one question, its reference answer."""
        return self.sample(
            subset=self.subset, native_id=native_id, file=self.FILE, locator=locator, split="test", task=task,
            media=media, regions=regions, meta=meta or {},
            conversation=[{"role": "user", "text": question}, {"role": "assistant", "text": answer}],
        )


def coco_image(roots: Roots, file_name: Any, locator: str) -> dict:
    """The image media dict of a COCO-style file name (looked up as `COCO_FOLDERS` says)."""
    if not isinstance(file_name, str):
        raise Reject("bad_record", f"image name {file_name!r} is not a string", locator)
    path = find_media(roots, [(folder, file_name) for folder in COCO_FOLDERS], locator)
    width, height = image_size(roots, path, locator)
    return {"kind": "image", "path": path, "width": width, "height": height}


def mask_region(segmentation: Any, media: dict, locator: str, label: str | None = None) -> dict:
    """A mask-prompt region on an image from a COCO segmentation (polygons or RLE)."""
    rle = segmentation_rle(segmentation, media["height"], media["width"], locator)
    if not masks.area(rle):
        raise Reject("empty_mask", "the region's mask is empty", locator)
    return {"label": label, "prompt": "mask", "mask_origin": "annotation",
            "frames": [{"frame": 0, "mask": rle, "box": masks.bbox(rle)}]}


def box_region(xywh: Any, media: dict, locator: str, polygon: Any = None) -> dict:
    """A box-prompt region carrying the filled-rectangle mask the official evaluation feeds the
    model (the box's own polygon when the benchmark ships one, as Ferret-Bench does; else the
    rectangle itself, as PixelRefer's VG script does): the prompt stays a box, never a fake mask."""
    if not (isinstance(xywh, list) and len(xywh) == 4 and all(isinstance(v, (int, float)) for v in xywh)):
        raise Reject("bad_box", f"box {str(xywh)[:60]} is not [x, y, w, h]", locator)
    box = masks.clip_box(masks.xywh_to_xyxy(xywh), media["width"], media["height"])
    if box is None:
        raise Reject("degenerate_box", f"box {xywh} has no area inside the image", locator)
    if polygon is None:
        rle, origin = masks.box_to_rle(box, media["height"], media["width"]), "box_rectangle"
    else:
        rle, origin = segmentation_rle(polygon, media["height"], media["width"], locator), "box_polygon"
    return {"prompt": "box", "mask_origin": origin, "frames": [{"frame": 0, "mask": rle, "box": box}]}


def text_field(record: Any, key: str, locator: str) -> str:
    """A non-empty string field of a record (Reject `bad_record` naming it otherwise)."""
    value = record.get(key) if isinstance(record, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise Reject("bad_record", f"`{key}` must be a non-empty string", locator)
    return value.strip()

