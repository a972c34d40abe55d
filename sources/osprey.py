"""Osprey-724K (all five files) -> mask-prompt region QA, recognition and detailed captions.

Expected tree under --root (any of the five files; at least one):

    osprey_conversation.json            -> subset conversation,        task region_qa
    osprey_detail_description.json      -> subset detail_description,  task detailed_caption
    osprey_part_level.json              -> subset part_level,          task region_qa (PACO part questions)
    osprey_lvis_positive_negative.json  -> subset lvis_pos_neg,        task recognition (is <obj0> a <category>?)
    osprey_short_form.json              -> subset short_form,          task region_qa
    coco_imgs/                          COCO train+val images in one flat folder (as Osprey's configs expect)

Records are `{id, file_name, height, width, annotation: [{segmentation}], conversations}`;
the detail file has `description: ["<region1>: text", ...]` instead, which becomes one question
(from `templates.DETAILED_DESCRIPTION`) and answer (the text after the tag) per entry.

Choices (each visible in the sample):
* sample id `osprey/{subset}/{index in the file}`; Osprey's own `id` repeats per image, it is kept
  in `meta.osprey_id`;
* images: `coco_imgs/{file_name}`; a COCO-2014 name (`COCO_train2014_000000123456.jpg`) absent
  from the folder maps to its 2017 basename `000000123456.jpg`, as Osprey's loader does;
* region tags `<regionN>` -> `<obj{i}>` via `dialects.OSPREY` (typo variants repaired, the rest
  rejected); annotations no text names are dropped (their 1-based numbers in
  `meta.unreferenced_regions`) and the rest keep their native order;
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
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas import Reject, make_id, masks, validate
from sources import dialects, fixtures, templates
from sources.base import Outcome, resolve_inside
from sources.common import image_size, segmentation_rle
from sources.jsonrecords import JsonRecordsAdapter

IMAGES = "coco_imgs"
SHORT_ANSWER = " Answer the question using a single word or phrase."
_COCO2014 = re.compile(r"^COCO_(?:train|val)2014_(\d{12}\.jpg)$")


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
    version = "1"
    license = "CC-BY-NC-4.0"
    layout = textwrap.dedent(__doc__.split("\n\n")[2])  # the tree in the module docstring

    def files(self, root: Path) -> list[str]:
        present = [f for f in FILES if (root / f).is_file()]
        if not present:
            raise FileNotFoundError(f"no Osprey-724K file under {root}; expected: {self.layout}")
        return present

    def subset(self, file: str) -> str:
        return FILES[file].subset

    def sample(self, root: Path, file: str, index: int, record: object) -> Outcome:
        spec, locator = FILES[file], f"{file}[{index}]"
        if not isinstance(record, dict) or not isinstance(record.get("annotation"), list):
            raise Reject("bad_record", "expected an object with an `annotation` list", locator)
        path = _image_path(root, str(record.get("file_name", "")), locator)
        width, height = image_size(root, path, locator)
        if (record.get("width", width), record.get("height", height)) != (width, height):
            raise Reject("image_size_mismatch", f"{path} is {width}x{height}, the record says "
                         f"{record.get('width')}x{record.get('height')}", locator)
        sample_id = make_id(self.name, spec.subset, index)
        annotations = record["annotation"]
        turns, named, notes = dialects.map_conversation(
            dialects.OSPREY, _native_turns(record, spec, sample_id, locator), len(annotations), locator)
        for turn in turns:
            turn.text += spec.suffix if turn.role == "user" else ""
        regions = [_region(annotations[n - 1], width, height, locator) for n in named]
        meta = {"osprey_id": record.get("id"), "file_name": record.get("file_name"), **notes}
        return validate({
            "id": sample_id, "source": self.name, "subset": spec.subset, "split": "train",
            "license": self.license, "task": spec.task,
            "media": {"kind": "image", "path": path, "width": width, "height": height},
            "regions": regions, "conversation": [t.model_dump() for t in turns], "meta": meta,
            "provenance": {"file": file, "locator": locator, "adapter": self.name, "adapter_version": self.version},
        }, locator)

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


def _image_path(root: Path, file_name: str, locator: str) -> str:
    """`coco_imgs/{file_name}`, or the 2017 basename of an absent COCO-2014 name."""
    path = f"{IMAGES}/{file_name}"
    resolve_inside(root / IMAGES, file_name, locator)
    coco2017 = _COCO2014.match(file_name)
    if coco2017 and not (root / path).exists():
        return f"{IMAGES}/{coco2017.group(1)}"
    return path


def _native_turns(record: dict, spec: OspreyFile, sample_id: str, locator: str) -> object:
    """The record's native `{from, value}` turns; the detail file's are built from `description`."""
    if not spec.description:
        return record.get("conversations")
    entries = record.get("description")
    if not isinstance(entries, list):
        raise Reject("bad_record", "expected a `description` list", locator)
    turns = []
    for i, entry in enumerate(entries):
        text = str(entry).lstrip()
        tag = dialects.OSPREY.tag.match(text)
        if tag is None:
            raise Reject("region_tag_malformed", f"description {i} does not start with <regionN>: {text[:40]!r}", locator)
        question = templates.pick(templates.DETAILED_DESCRIPTION, f"{sample_id}:{i}").format(obj=tag.group(0))
        turns += dialects.native_dialogue(question, text[tag.end():].lstrip(" :"))
    return turns


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
