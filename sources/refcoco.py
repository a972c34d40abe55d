"""RefCOCO, RefCOCO+ and RefCOCOg -> short region captions (the referring expression).

Expected layout under `--root` (the `refer` release folders as unpacked, plus COCO train2014):

    refcoco/instances.json   refcoco/refs(unc).p   refcoco/refs(google).p
    refcoco+/instances.json  refcoco+/refs(unc).p
    refcocog/instances.json  refcocog/refs(umd).p  refcocog/refs(google).p
    train2014/COCO_train2014_000000000009.jpg ...

A `refs(<split_by>).p` pickle is a list of refs `{ref_id, ann_id, image_id, category_id, split,
sentences: [{sent_id, raw, sent, tokens}]}`; the region (mask and box) is the COCO annotation
`ann_id` of the folder's `instances.json`. The pickle is untrusted input: it is read with
`sources.safe_pickle` (plain containers and scalars only). One sample per sentence:
"Describe <obj0> briefly." answered by the raw expression (whitespace-normalised, case kept),
id `refcoco/<subset>/<ref_id>_<sent_id>`, `split` = the ref's split (train, val, testA, ...).
A ref whose annotation or image is unusable is one reject. One unit per refs file (the family
holds ~150k refs; each unit holds its pickle and `instances.json` in memory).

    pixelrefer ingest --source refcoco --root /data/refer --out out/
"""

from __future__ import annotations

import pickle
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas import Media, Provenance, Reject, Sample, Turn, make_id, validate
from sources.base import Adapter, Outcome, Unit
from sources.coco import CocoIndex, annotation_region, category_label, checked_image, fixture_annotation, read_index
from sources.common import normalize_text
from sources.fixtures import write_image, write_json
from sources.safe_pickle import safe_loads

IMAGES = "train2014"
QUESTION = "Describe <obj0> briefly."
_LICENSE = "refer-annotations (Apache-2.0 repository, unverified for the data); COCO images"
# refs file -> subset name (a subset may not hold "+")
REFS = {
    "refcoco/refs(unc).p": "refcoco_unc",
    "refcoco/refs(google).p": "refcoco_google",
    "refcoco+/refs(unc).p": "refcocoplus_unc",
    "refcocog/refs(umd).p": "refcocog_umd",
    "refcocog/refs(google).p": "refcocog_google",
}


class RefcocoAdapter(Adapter):
    name = "refcoco"
    version = "1"
    license = _LICENSE
    layout = textwrap.dedent(__doc__.split("\n\n")[2])  # the tree shown in the docstring above

    def units(self, root: Path) -> list[Unit]:
        present = [refs for refs in REFS if (root / refs).is_file()]
        if not present:
            raise FileNotFoundError(f"{root}: none of {', '.join(REFS)} found (expected layout:\n{self.layout})")
        return [Unit(self.name, REFS[refs], {"refs": refs}) for refs in present]

    def convert(self, root: Path, unit: Unit) -> Iterator[Outcome]:
        refs_file = unit.spec["refs"]
        index = read_index(root / Path(refs_file).parent / "instances.json")
        try:
            refs = safe_loads((root / refs_file).read_bytes(), refs_file)
            if not isinstance(refs, list) or not all(isinstance(ref, dict) for ref in refs):
                raise Reject("bad_refs", "expected a list of ref dicts", refs_file)
        except Reject as reject:
            yield reject
            return
        anns = {ann["id"]: ann for image_anns in index.annotations.values() for ann in image_anns}
        for ref in refs:
            yield from self._ref_outcomes(root, refs_file, unit.name, index, anns, ref)

    def _ref_outcomes(
        self, root: Path, refs_file: str, subset: str, index: CocoIndex, anns: dict[int, dict], ref: dict[str, Any]
    ) -> Iterator[Outcome]:
        locator = f"refs[ref_id={ref.get('ref_id')}]"
        where = f"{refs_file}:{locator}"
        try:
            ann = anns.get(ref.get("ann_id"))
            if ann is None:
                raise Reject("annotation_missing", f"ann_id {ref.get('ann_id')} is not in instances.json", where)
            image = index.images[ann["image_id"]]
            relative = f"{IMAGES}/{image.get('file_name')}"
            width, height = checked_image(root, relative, image, where)
            category = index.categories.get(ann.get("category_id"), {"name": ""})
            region = annotation_region(ann, category_label(category["name"]) or None, width, height, where)
            sentences = ref.get("sentences")
            if not isinstance(sentences, list) or not sentences or not all(isinstance(s, dict) for s in sentences):
                raise Reject("no_sentences", f"sentences is {str(sentences)[:60]}, not a non-empty list of dicts", where)
        except Reject as reject:
            yield reject
            return
        for i, sentence in enumerate(sentences):
            sample = Sample(
                id=make_id(self.name, subset, f"{ref.get('ref_id')}_{sentence.get('sent_id')}"),
                source=self.name, subset=subset, split=str(ref.get("split")), license=_LICENSE, task="phrase_caption",
                media=Media(kind="image", path=relative, width=width, height=height),
                regions=[region],
                conversation=[Turn(role="user", text=QUESTION),
                              Turn(role="assistant", text=normalize_text(str(sentence.get("raw") or sentence.get("sent") or "")))],
                meta={key: ref.get(key) for key in ("ref_id", "ann_id", "image_id", "category_id")} | {"sent_id": sentence.get("sent_id")},
                provenance=Provenance(file=refs_file, locator=f"{locator}.sentences[{i}]", adapter=self.name, adapter_version=self.version),
            )
            try:
                yield validate(sample, f"{where}.sentences[{i}]")
            except Reject as reject:
                yield reject

    def write_fixture(self, root: Path) -> None:
        write_fixture(root)


PERSON, DOG = (4, 4, 24, 44), (30, 20, 60, 44)


def _ref(ref_id: int, ann_id: int, image_id: int, split: str, *sentences: tuple[int, str]) -> dict[str, Any]:
    return {"ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "category_id": 1, "split": split,
            "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg", "sent_ids": [s for s, _ in sentences],
            "sentences": [{"sent_id": s, "raw": raw, "sent": raw.lower().strip(), "tokens": raw.lower().split()}
                          for s, raw in sentences]}


def write_fixture(root: Path) -> None:
    """refcoco (unc), refcoco+ (unc) and refcocog (umd) over two train2014 images; traps: a ref
    whose annotation is missing, a ref whose image file is missing, messy whitespace."""
    write_image(root / IMAGES / "COCO_train2014_000000000101.jpg", 64, 48, [PERSON, DOG], seed=101)
    instances = {
        "info": {"description": "pixelrefer-data RefCOCO fixture"}, "licenses": [],
        "images": [{"id": 101, "file_name": "COCO_train2014_000000000101.jpg", "width": 64, "height": 48},
                   {"id": 102, "file_name": "COCO_train2014_000000000102.jpg", "width": 32, "height": 32}],
        "annotations": [fixture_annotation(1001, 101, 1, PERSON, iscrowd=0), fixture_annotation(1002, 101, 18, DOG, iscrowd=0),
                        fixture_annotation(1003, 102, 1, (0, 0, 8, 8), iscrowd=0)],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}, {"id": 18, "name": "dog", "supercategory": "animal"}],
    }
    refs = {
        "refcoco/refs(unc).p": [
            _ref(1, 1001, 101, "train", (11, "Man on the left"), (12, "left  guy ")),
            _ref(2, 1002, 101, "testA", (21, "the\tDOG")),
            _ref(3, 9999, 101, "train", (31, "nobody")),
            _ref(4, 1003, 102, "val", (41, "lost image")),
        ],
        "refcoco+/refs(unc).p": [_ref(5, 1001, 101, "train", (51, "man in red"))],
        "refcocog/refs(umd).p": [_ref(10, 1002, 101, "val", (101, "A brown dog lying on the right."))],
    }
    for refs_file, records in refs.items():
        write_json(root / Path(refs_file).parent / "instances.json", instances)
        # protocol 2, as the Python 2 era release files
        (root / refs_file).write_bytes(pickle.dumps(records, protocol=2))
