"""Osprey-724K (all five files) -> mask-prompt region QA, recognition and detailed captions.

Records are `{id, file_name, height, width, annotation: [{segmentation}], conversations}`;
the detail file has `description: ["<region1>: text", ...]` instead, which becomes one question
(from `templates.DETAILED_DESCRIPTION`) and answer (the text after the tag) per entry.

Choices (each visible in the sample):
* sample id `osprey/{subset}/{index in the file}`; Osprey's own `id` repeats per image, it is kept
  in `meta.osprey_id`;
* images: looked up in the declared roots (the annotation folder first, then each media
  folder), first as Osprey's flat `coco_imgs/`, then as a plain COCO folder (`train2017/`,
  `val2017/`, and `train2014/` / `val2014/` for a 2014 name), so one COCO folder serves Osprey,
  RefCOCO and LVIS. A COCO-2014 name (`COCO_train2014_000000123456.jpg`) is tried as its 2017
  basename `000000123456.jpg` first, as Osprey's loader does;
* region tags `<regionN>` -> `<obj{i}>` via `dialects.OSPREY` (typo variants repaired, the rest
  rejected); annotations no text names are dropped (their 1-based numbers in
  `meta.unreferenced_regions`) and the rest keep their native order;
* `description` entries beyond the annotation count, and empty trailing ones, are ignored, as
  Osprey's loader reads one entry per annotation (`meta.ignored_description_entries`);
* conversations opening with `gpt` turns lose those turns (`meta.dropped_leading_turns`);
* part_level and short_form user turns get Osprey's suffix asking for a single word or phrase,
  which its loader adds at training time; the answers are that short.

Rejects: `path_escapes_root`, `image_missing`, `image_empty`, `image_unreadable`,
`image_size_mismatch` (record height/width vs the file), `mask_size_mismatch`, `bad_mask`,
`region_tag_malformed`, `region_index_out_of_range`, `bad_record`, and `schemas.validate`'s.

    pixelrefer ingest --source osprey --root /data/osprey --out build/
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas import Reject, make_id, masks
from sources import dialects, fixtures, templates
from sources.base import Outcome
from sources.common import find_media, image_size, segmentation_rle
from sources.jsonrecords import JsonRecord, JsonRecordsAdapter
from sources.roots import Roots

IMAGES = "coco_imgs"
SHORT_ANSWER = " Answer the question using a single word or phrase."
_COCO2014 = re.compile(r"^COCO_(train|val)2014_(\d{12}\.jpg)$")


@dataclass(frozen=True)
class OspreyFile:
    subset: str
    task: str
    suffix: str = ""  # appended to every user turn
    description: bool = False  # `description` entries instead of `conversations`


FILES: dict[str, OspreyFile] = {
    "osprey_conversation.json": OspreyFile("conversation", "region_qa"),
    "osprey_detail_description.json": OspreyFile("detail_description", "detailed_caption", description=True),
    "osprey_part_level.json": OspreyFile("part_level", "region_qa", SHORT_ANSWER),
    "osprey_lvis_positive_negative.json": OspreyFile("lvis_pos_neg", "recognition"),
    "osprey_short_form.json": OspreyFile("short_form", "region_qa", SHORT_ANSWER),
}


class OspreyAdapter(JsonRecordsAdapter):
    name = "osprey"
    version = "2"
    license = "CC-BY-NC-4.0"
    LAYOUT = """\
osprey_conversation.json            -> subset conversation,        task region_qa
osprey_detail_description.json      -> subset detail_description,  task detailed_caption
osprey_part_level.json              -> subset part_level,          task region_qa (PACO part questions)
osprey_lvis_positive_negative.json  -> subset lvis_pos_neg,        task recognition (is <obj0> a <category>?)
osprey_short_form.json              -> subset short_form,          task region_qa
coco_imgs/                          COCO train+val images in one flat folder (as Osprey's configs expect),
                                    or train2017/ val2017/ of a COCO folder (here or a declared media root)
(any of the five files; at least one)
"""

    def files(self, roots: Roots) -> list[str]:
        present = [f for f in FILES if (roots.annotations / f).is_file()]
        if not present:
            raise FileNotFoundError(f"no Osprey-724K file under {roots.annotations}; expected:\n{self.LAYOUT}")
        return present

    def subset(self, file: str) -> str:
        return FILES[file].subset

    def outcomes(self, roots: Roots, record: JsonRecord, locator: str) -> Outcome:
        spec, value = FILES[record.file], record.value
        if not (isinstance(value, dict) and isinstance(value.get("file_name"), str) and isinstance(value.get("annotation"), list)):
            raise Reject("bad_record", "expected an object with a `file_name` string and an `annotation` list", locator)
        path = find_media(roots, _image_candidates(value["file_name"]), locator)
        width, height = image_size(roots, path, locator)
        if (value.get("width", width), value.get("height", height)) != (width, height):
            raise Reject("image_size_mismatch", f"{path} is {width}x{height}, the record says "
                         f"{value.get('width')}x{value.get('height')}", locator)
        annotations = value["annotation"]
        native, ignored = _native_turns(value, spec, make_id(self.name, spec.subset, record.index), len(annotations), locator)
        turns, named, notes = dialects.map_conversation(dialects.OSPREY, native, len(annotations), locator)
        if ignored:
            notes["ignored_description_entries"] = ignored
        for turn in turns:
            turn.text += spec.suffix if turn.role == "user" else ""
        return self.sample(
            subset=spec.subset, native_id=record.index, file=record.file, locator=locator, task=spec.task,
            media={"kind": "image", "path": path, "width": width, "height": height},
            regions=[_region(annotations[n - 1], width, height, locator) for n in named],
            conversation=turns,
            meta={"osprey_id": value.get("id"), "file_name": value.get("file_name"), **notes},
        )

    def write_fixture(self, root: Path) -> None:
        """Three 64x48 COCO images and one record per trap (see tests/sources/test_osprey.py)."""
        a, b, c = (8, 8, 24, 20), (30, 20, 50, 40), (2, 30, 12, 44)
        fixtures.write_image(root / IMAGES / "000000000101.jpg", 64, 48, [a, b, c], seed=101)
        fixtures.write_image(root / IMAGES / "COCO_train2014_000000000102.jpg", 64, 48, [a, b], seed=102)
        fixtures.write_image(root / IMAGES / "000000000103.jpg", 64, 48, [a], seed=103)
        rle_b = {"segmentation": masks.encode(fixtures.rect_mask(64, 48, b))}
        q = dialects.native_dialogue
        fixtures.write_json(root / "osprey_conversation.json", [
            {"id": 101, **_image("COCO_train2014_000000000101.jpg"), "annotation": [_poly(a), rle_b, _poly(c)],
             "conversations": q("<image>\nWhat is <region1> next to <Region2]?", "<region1> sits beside <regin 2>.")},
            {"id": 101, **_image("COCO_train2014_000000000101.jpg"), "annotation": [_poly(a)],
             "conversations": [{"from": "gpt", "value": "Hello."}, *q("What colour is <region1.", "Red.")]},
            {"id": 101, **_image("000000000101.jpg"), "annotation": [_poly(a)], "conversations": q("Is <region3> red?", "Yes.")},
            {"id": 101, **_image("000000000101.jpg"), "annotation": [_poly(a)], "conversations": q("Is <region> red?", "Yes.")},
            {"id": 7, **_image("../osprey_short_form.json"), "annotation": [_poly(a)], "conversations": q("<region1>?", "A box.")},
            {"id": 999, **_image("COCO_val2014_000000000999.jpg"), "annotation": [_poly(a)], "conversations": q("<region1>?", "A box.")},
            {"id": 101, **_image("000000000101.jpg"), "annotation": [{"segmentation": masks.encode(fixtures.rect_mask(32, 24, a))}],
             "conversations": q("<region1>?", "A box.")},
        ])
        fixtures.write_json(root / "osprey_detail_description.json", [
            {"id": 101, **_image("COCO_train2014_000000000101.jpg"), "annotation": [_poly(a), rle_b],
             "description": ["<region1>: A red box in the top left.", "<region2>: A blue   square, right of <region1>."]},
            {"id": 101, **_image("COCO_train2014_000000000101.jpg"), "annotation": [_poly(a)], "description": ["A red box."]},
            {"id": 101, **_image("COCO_train2014_000000000101.jpg"), "annotation": [_poly(a), rle_b, _poly(c)],
             "description": ["<region1>: A red box.", "<region of2>: A blue square.", ""]},
            {"id": 101, **_image("COCO_train2014_000000000101.jpg"), "annotation": [_poly(a)],
             "description": ["<region1>: A red box.", "<region2>: An entry without an annotation."]},
        ])
        fixtures.write_json(root / "osprey_part_level.json", [
            {"id": 102, **_image("COCO_train2014_000000000102.jpg"), "annotation": [_poly(a)],
             "conversations": q("What part of the object is <region1>?", "handle")},
        ])
        fixtures.write_json(root / "osprey_lvis_positive_negative.json", [
            {"id": 103, **_image("000000000103.jpg"),
             "annotation": [{"segmentation": _uncompressed_rle(fixtures.rect_mask(64, 48, a))}],
             "conversations": q("<region1> Is it a mug?", "No, it is a box.")},
        ])
        fixtures.write_json(root / "osprey_short_form.json", [
            {"id": 102, **_image("COCO_train2014_000000000102.jpg"), "annotation": [_poly(a), rle_b],
             "conversations": q("What colour is <region2>?", "blue", "And <region1>?", "red")},
        ])


def _image_candidates(file_name: str) -> list[tuple[str, str]]:
    """Where an image may be, in order: Osprey's `coco_imgs/` (a 2014 name as its 2017 basename
    first), then a COCO folder's `train2017/`, `val2017/` and, for a 2014 name, its 2014 folder."""
    coco2014 = _COCO2014.match(file_name)
    if coco2014 is None:
        return [(IMAGES, file_name), ("train2017", file_name), ("val2017", file_name)]
    split, basename = coco2014.groups()
    return [(IMAGES, basename), (IMAGES, file_name), ("train2017", basename), ("val2017", basename), (f"{split}2014", file_name)]


def _native_turns(record: dict, spec: OspreyFile, sample_id: str, count: int, locator: str) -> tuple[object, int]:
    """The record's native `{from, value}` turns and how many `description` entries were ignored.

    The detail file's turns are built from its `description` entries as Osprey's loader reads
    them, one per annotation: entries beyond the annotation count, and empty trailing ones, are
    left out (counted) instead of failing the record.
    """
    if not spec.description:
        return record.get("conversations"), 0
    entries = record.get("description")
    if not isinstance(entries, list):
        raise Reject("bad_record", "expected a `description` list", locator)
    kept = entries[:count]
    while kept and isinstance(kept[-1], str) and not kept[-1].strip():
        kept.pop()
    if not kept:
        raise Reject("bad_record", f"no non-empty `description` entry among {len(entries)}", locator)
    turns = []
    for i, entry in enumerate(kept):
        if not isinstance(entry, str):
            raise Reject("bad_record", f"description {i} is {type(entry).__name__}, not a string", locator)
        text = entry.lstrip()
        tag = dialects.OSPREY.tag.match(text)
        if tag is None:
            raise Reject("region_tag_malformed", f"description {i} does not start with <regionN>: {text[:40]!r}", locator)
        question = templates.pick(templates.DETAILED_DESCRIPTION, f"{sample_id}:{i}").format(obj=tag.group(0))
        turns += dialects.native_dialogue(question, text[tag.end():].lstrip(" :"))
    return turns, len(entries) - len(kept)


def _region(annotation: object, width: int, height: int, locator: str) -> dict:
    """A mask-prompt region from one `annotation` entry (polygon, RLE or uncompressed RLE)."""
    segmentation = annotation.get("segmentation") if isinstance(annotation, dict) else None
    rle = segmentation_rle(segmentation, height, width, locator)
    return {"prompt": "mask", "mask_origin": "annotation", "frames": [{"frame": 0, "mask": rle, "box": masks.bbox(rle)}]}


def _poly(rect: fixtures.Rect) -> dict:
    return {"segmentation": [fixtures.rect_polygon(rect)]}


def _image(file_name: str) -> dict:
    return {"file_name": file_name, "height": 48, "width": 64}


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's iscrowd form: column-major run lengths, starting with a (maybe empty) run of zeros."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    return {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + runs}
