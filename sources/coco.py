"""COCO-format building blocks shared by the LVIS, PACO and RefCOCO adapters.

* `read_index(path)`: a COCO-style JSON (images / annotations / categories) parsed once per
  process and indexed by image. Memory: the whole file is parsed with `json.loads`, so a worker
  holds roughly 5-8x the file size while converting (LVIS v1 train, ~1 GB on disk, needs several
  GB); the index is cached per process (keyed by path, size and mtime), so the units a worker
  converts share one parse instead of re-reading the file per unit.
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
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from schemas import Media, Reject, Region, RegionFrame, Turn, masks
from schemas.placeholders import obj
from sources import jsonarray
from sources.base import Adapter, Outcome, Unit, isolated
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


@dataclass(frozen=True)
class CocoIndex:
    """A COCO-style annotation file indexed by image."""

    images: dict[int, dict[str, Any]]  # image id -> record, in ascending id order (ids listed once only)
    annotations: dict[int, list[dict[str, Any]]]  # image id -> its annotations, by ascending id
    categories: dict[int, dict[str, Any]]
    orphans: list[dict[str, Any]]  # annotations whose image_id is not in images[]
    duplicates: dict[int, int]  # image id listed more than once -> how many annotations name it
    malformed: list[str]  # `images[3]`, `annotations[7]`, ...: records without an integer id


def _with_ids(records: list[Any], kind: str, malformed: list[str]) -> list[dict[str, Any]]:
    """The records that are objects with an integer `id`; the others' places go to `malformed`."""
    kept = []
    for i, record in enumerate(records):
        value = record.get("id") if isinstance(record, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            kept.append(record)
        else:
            malformed.append(f"{kind}[{i}]")
    return kept


def build_index(data: Any, file: str) -> CocoIndex:
    """Index a parsed COCO-style file; a file without the three top-level lists is a one-line
    ValueError naming `file`, a record that is not an object with an integer id is listed in
    `malformed` (one reject each), never the whole file's failure.

    An image id listed twice cannot tell which annotations belong to which record, so neither is
    used (today's LVIS loaders silently keep the later one, putting masks on the wrong image).
    """
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data, dict) or not isinstance(data.get(k), list)]
    if missing:
        raise ValueError(f"{file}: not a COCO-style annotation file (no list {missing[0]!r} at the top level)")
    malformed: list[str] = []
    image_records = _with_ids(data["images"], "images", malformed)
    counts = Counter(img["id"] for img in image_records)
    images = {img["id"]: img for img in sorted(image_records, key=lambda img: img["id"]) if counts[img["id"]] == 1}
    anns = sorted(_with_ids(data["annotations"], "annotations", malformed), key=lambda a: a["id"])
    categories = {c["id"]: c for c in _with_ids(data["categories"], "categories", malformed)}
    annotations: dict[int, list[dict[str, Any]]] = {}
    orphans, duplicates = [], {i: 0 for i, n in sorted(counts.items()) if n > 1}
    for ann in anns:
        image_id = ann.get("image_id")
        if not isinstance(image_id, int):  # unhashable or foreign ids name no listed image
            orphans.append(ann)
        elif image_id in images:
            annotations.setdefault(image_id, []).append(ann)
        elif image_id in duplicates:
            duplicates[image_id] += 1
        else:
            orphans.append(ann)
    return CocoIndex(images, annotations, categories, orphans, duplicates, malformed)


@lru_cache(maxsize=2)
def _cached_index(path: str, size: int, mtime_ns: int) -> CocoIndex:
    return build_index(jsonarray.load_json(Path(path)), Path(path).name)


def read_index(path: Path) -> CocoIndex:
    """The index of a COCO-style JSON, parsed once per process while the file is unchanged."""
    stat = path.stat()
    return _cached_index(str(path), stat.st_size, stat.st_mtime_ns)


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
            count = len(read_index(roots.annotations / file).images)
            bounds = list(range(0, count, self.images_per_unit)) or [0]
            for k, start in enumerate(bounds):
                spec = {"file": file, "start": start, "stop": start + self.images_per_unit, "last": k == len(bounds) - 1}
                units.append(Unit(self.name, f"{Path(file).stem}-{k:05d}", spec))
        return units

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        file = unit.spec["file"]
        index = read_index(roots.annotations / file)
        for image_id in list(index.images)[unit.spec["start"] : unit.spec["stop"]]:
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
