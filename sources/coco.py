"""COCO-format building blocks shared by the LVIS, PACO and RefCOCO adapters.

* Memory and units: a COCO-style JSON (images / annotations / categories) is never parsed whole
  by the recognition adapters. `units()` counts its images through `sources.cocoindex` (one
  streaming pass writes an on-disk index of byte spans, grouped by image); a unit's `records()`
  parses only its images' and their annotations' spans. Per-process peak memory does not grow
  with the file (tests/benchmarks/bench_ingest.py --memory). `read_index(path)` loads a whole
  index (RefCOCO's instances.json, which its refs address by annotation id).
* `category_label(name)`: LVIS/PACO names to plain words: `car_(automobile)` -> `car`,
  `trash_can` -> `trash can`, `handbag:zip` -> `handbag zip` (object, then part: the form
  Osprey's evaluation compares against).
* `annotation_region(...)`: one annotation -> a `Region` (mask prompt from its segmentation, or
  a box prompt when the segmentation is empty and the caller allows it; never a faked mask).
* `RecognitionAdapter`: the category-recognition adapter LVIS and PACO share (per image, up to
  20 regions as a multi-turn "What is the category of <obj0>?" conversation).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from schemas import Media, Region, RegionFrame, Reject, Turn, masks
from schemas.placeholders import obj
from sources.base import Adapter, Outcome, Unit, isolated
from sources.cocoindex import CocoIndex, open_index
from sources.common import image_size, segmentation_rle
from sources.fixtures import Rect, rect_polygon
from sources.roots import Roots


def category_label(name: str) -> str:
    """`car_(automobile)` -> `car`; `trash_can` -> `trash can`; `handbag:zip` -> `handbag zip`.

    Each `:` part is cut at its first `_(`, as Osprey's LVIS/PACO evaluation does
    (CircleRadon/Osprey: osprey/eval/lvis_paco_eval.py), so an LVIS name that carries a synonym
    after its disambiguator, `monitor_(computer_equipment) computer_monitor`, is `monitor`.
    """
    return " ".join(" ".join(part.split("_(")[0].replace("_", " ").split()) for part in name.split(":"))


def read_index(path: Path) -> CocoIndex:
    """The whole index of a COCO-style JSON (RefCOCO's instances.json: its refs name any annotation)."""
    return open_index(path).load()


def checked_image(roots: Roots, relative: str, image: dict[str, Any], locator: str) -> tuple[int, int]:
    """(width, height) of the image file, which must exist, be readable and match its record."""
    width, height = image_size(roots, relative, locator)
    if (width, height) != (image.get("width"), image.get("height")):
        raise Reject(
            "image_size_mismatch",
            f"{relative} is {width}x{height} but its record says {image.get('width')}x{image.get('height')}",
            locator,
        )
    return width, height


def annotation_region(
    ann: dict[str, Any], label: str, width: int, height: int, locator: str, box_if_unsegmented: bool = False
) -> Region:
    """A region from one annotation: its mask (any COCO encoding) and its clipped box.

    An empty segmentation (`[]` or missing) becomes a box prompt when `box_if_unsegmented`,
    else a `no_segmentation` reject. Rejects: those of `segmentation_rle`, empty_mask,
    degenerate_box, bad_box.
    """
    bbox = ann.get("bbox")
    box = None
    if isinstance(bbox, list) and len(bbox) == 4:
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox):
            raise Reject("bad_box", f"bbox {str(bbox)[:80]} is not four finite numbers", locator)
        box = masks.clip_box(masks.xywh_to_xyxy(bbox), width, height)
    segmentation = ann.get("segmentation")
    if not segmentation:
        if not box_if_unsegmented:
            raise Reject("no_segmentation", "the annotation has no segmentation", locator)
        if box is None:
            raise Reject("degenerate_box", f"bbox {bbox} has no area inside the {width}x{height} image", locator)
        return Region(label=label, prompt="box", frames=[RegionFrame(frame=0, box=box)])
    rle = segmentation_rle(segmentation, height, width, locator)
    tight = masks.bbox(rle)
    if tight is None:
        raise Reject("empty_mask", "the segmentation covers no pixel", locator)
    return Region(label=label, prompt="mask", mask_origin="annotation", frames=[RegionFrame(frame=0, mask=rle, box=tight)])


def fixture_annotation(
    ann_id: int, image_id: int, category_id: int, rect: Rect, segmentation: Any = None, **extra: Any
) -> dict[str, Any]:
    """A fixture's COCO annotation of a drawn rectangle: xywh bbox, area, and the rectangle's exact
    polygon unless another `segmentation` is given."""
    x0, y0, x1, y1 = rect
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": float((x1 - x0) * (y1 - y0)),
            "segmentation": [rect_polygon(rect)] if segmentation is None else segmentation, **extra}


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class RecognitionAdapter(Adapter):
    """Category recognition over a COCO-style release (LVIS, PACO).

    One candidate sample per image and group of at most `regions_per_sample` usable annotations
    (ascending annotation id): sample `{source}/{subset}/{image_id}_{group}`. An unusable image
    gives one reject; an unusable annotation gives one reject and the rest of its image still
    converts; an annotation naming an image absent from `images[]`, and an image id listed more
    than once, are rejected in the file's last unit. Images without annotations are not
    candidates. Annotation files are looked for in `annotation_dirs` under the annotation root
    (the release's own folder first); images in the declared media roots. Subclasses name their
    files (`files`), say how to find an image (`image_path`) and may add per-region extras
    (`region_meta`).
    """

    files: ClassVar[dict[str, tuple[str, str, str]]] = {}  # annotation file -> (subset, split, license)
    annotation_dirs: ClassVar[tuple[str, ...]] = ("",)
    images_per_unit = 1000
    regions_per_sample = 20
    box_if_unsegmented = False
    system_prompt = (
        "In the conversation below, you simply answer the category name based on what you see in the "
        "imagery inside a particular region. I will give you only one region each time."
    )
    question = "What is the category of {region}? Using only one word or phrase."

    @abstractmethod
    def image_path(self, image: dict[str, Any], file: str, locator: str) -> str:
        """The image's path relative to a media root (a Reject when the record names none)."""

    def region_meta(self, ann: dict[str, Any]) -> dict[str, Any]:
        """Per-region extras kept in `meta["regions"]`."""
        return {"annotation_id": ann["id"], "category_id": ann.get("category_id")}

    def image_meta(self, image: dict[str, Any]) -> dict[str, Any]:
        """Per-image extras (federated-label ids) kept in `meta`."""
        return {key: image.get(key, []) for key in ("neg_category_ids", "not_exhaustive_category_ids")}

    def annotation_files(self, roots: Roots) -> list[str]:
        """The release's annotation files present, relative to the annotation root, in `files` order."""
        found = []
        for file in self.files:
            path = next((f"{d}/{file}".lstrip("/") for d in self.annotation_dirs if (roots.annotations / d / file).is_file()), None)
            found += [path] if path else []
        if not found:
            raise FileNotFoundError(f"{roots.annotations}: none of {', '.join(self.files)} found "
                                    f"(expected layout:\n{self.LAYOUT})")
        return found

    def units(self, roots: Roots) -> list[Unit]:
        units = []
        for file in self.annotation_files(roots):
            count = open_index(roots.annotations / file).count
            bounds = list(range(0, count, self.images_per_unit)) or [0]
            for k, start in enumerate(bounds):
                spec = {"file": file, "start": start, "stop": start + self.images_per_unit, "last": k == len(bounds) - 1}
                units.append(Unit(self.name, f"{Path(file).stem}-{k:05d}", spec))
        return units

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        file = unit.spec["file"]
        index = open_index(roots.annotations / file).load(unit.spec["start"], unit.spec["stop"], unit.spec["last"])
        for image_id in index.images:
            if image_id in index.annotations:
                yield f"{file}:images[id={image_id}]", (file, index, image_id)
        if unit.spec["last"]:
            for ann in index.orphans:
                locator = f"{file}:annotations[id={ann['id']}]"
                yield locator, Reject("image_record_missing", f"annotation {ann['id']} names image "
                                      f"{ann.get('image_id')}, which {file} does not list in images[]", locator)
            for where in index.malformed:
                locator = f"{file}:{where}"
                yield locator, Reject("bad_record", "not an object with an integer `id`", locator)
            for image_id, n_annotations in index.duplicates.items():
                locator = f"{file}:images[id={image_id}]"
                yield locator, Reject("duplicate_image_id", f"image id {image_id} is listed more than once in "
                                      f"images[]; its {n_annotations} annotation(s) cannot be placed", locator)

    def outcomes(self, roots: Roots, record: tuple[str, CocoIndex, int], locator: str) -> Iterator[Outcome]:
        file, index, image_id = record
        image = index.images[image_id]
        relative = self.image_path(image, file, locator)
        width, height = checked_image(roots, relative, image, locator)
        usable = []
        for ann in index.annotations[image_id]:
            ann_locator = f"{file}:annotations[id={ann['id']}]"
            for result in isolated(ann_locator, self._region, index, ann, width, height, ann_locator):
                if isinstance(result, Reject):
                    yield result
                else:
                    usable.append(result)
        subset, split, license = self.files[Path(file).name]
        for group, pairs in enumerate(chunks(usable, self.regions_per_sample)):
            yield from isolated(locator, lambda: self.sample(
                subset=subset, native_id=f"{image_id}_{group}", file=file, locator=locator, split=split,
                license=license, task="recognition",
                media=Media(kind="image", path=relative, width=width, height=height),
                regions=[region for _, region in pairs],
                conversation=self._conversation([region.label for _, region in pairs]),
                meta={"image_id": image_id, **self.image_meta(image), "regions": [self.region_meta(ann) for ann, _ in pairs]},
            ))

    def _region(self, index: CocoIndex, ann: dict[str, Any], width: int, height: int, locator: str) -> list[tuple[dict, Region]]:
        category = index.categories.get(ann.get("category_id"))
        if category is None:
            raise Reject("unknown_category", f"category_id {ann.get('category_id')} is not in categories[]", locator)
        label = category_label(str(category.get("name", "")))
        return [(ann, annotation_region(ann, label, width, height, locator, self.box_if_unsegmented))]

    def _conversation(self, labels: list[str]) -> list[Turn]:
        turns = [Turn(role="system", text=self.system_prompt)]
        for i, label in enumerate(labels):
            turns.append(Turn(role="user", text=self.question.format(region=obj(i))))
            turns.append(Turn(role="assistant", text=label))
        return turns
