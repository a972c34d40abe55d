"""RefCOCO, RefCOCO+ and RefCOCOg -> short region captions (the referring expression).

A `refs(<split_by>).p` pickle is a list of refs `{ref_id, ann_id, image_id, category_id, split,
sentences: [{sent_id, raw, sent, tokens}]}`; the region (mask and box) is the COCO annotation
`ann_id` of the folder's `instances.json`. The pickle is untrusted input: it is read with
`sources.safe_pickle` (plain containers and scalars only). One sample per sentence:
"Describe <obj0> briefly." answered by the sentence's `sent`, the release's cleaned form of the
expression (lower case, tokenised; `raw` keeps the annotators' case and typos), whitespace
normalised; id `refcoco/<subset>/<ref_id>_<sent_id>`, `split` = the ref's split (train, val,
testA, ...); `meta` holds the ref's `ref_id`, the sentence's `sent_id` and the annotation's
`ann_id`, `image_id`, `category_id`. Images are `train2014/<file_name>` in the annotation folder
or a declared media root (one COCO folder serves RefCOCO, Osprey and LVIS).

Rejects: a ref that is no object, or whose `ref_id` / `ann_id` is no integer or `split` no
string, is `bad_ref`; a ref whose annotation or image is unusable is one reject
(`annotation_missing`, `image_record_missing`, the image and mask checks); a sentence that is
no object, has no integer `sent_id` or no string `sent` is `bad_sentence`, and the ref's
other sentences still convert. A pickle that is refused or is not a list is one `unsafe_pickle`
/ `bad_pickle` / `bad_refs` reject for its file. One unit per refs file (the family holds
~150k refs; each unit holds its pickle and `instances.json` in memory).

    pixelrefer ingest --source refcoco --root /data/refer --out out/
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas import Reject, Region, Sample
from sources.base import Adapter, Outcome, Unit, isolated
from sources.coco import CocoIndex, annotation_region, category_label, checked_image, fixture_annotation, read_index
from sources.common import is_int, normalize_text
from sources.fixtures import write_image, write_json
from sources.roots import Roots
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


@dataclass(frozen=True)
class RefsFile:
    """What every ref of one refs file shares: its file, subset and the folder's instances.json."""

    file: str
    subset: str
    index: CocoIndex
    annotations: dict[int, dict[str, Any]]  # annotation id -> annotation


class RefcocoAdapter(Adapter):
    name = "refcoco"
    version = "2"
    license = _LICENSE
    LAYOUT = """\
refcoco/instances.json   refcoco/refs(unc).p   refcoco/refs(google).p
refcoco+/instances.json  refcoco+/refs(unc).p
refcocog/instances.json  refcocog/refs(umd).p  refcocog/refs(google).p
train2014/COCO_train2014_000000000009.jpg ...   (COCO train2014: here or in a declared media root)
"""

    def units(self, roots: Roots) -> list[Unit]:
        present = [refs for refs in REFS if (roots.annotations / refs).is_file()]
        if not present:
            raise FileNotFoundError(f"{roots.annotations}: none of {', '.join(REFS)} found (expected layout:\n{self.LAYOUT})")
        return [Unit(self.name, REFS[refs], {"refs": refs}) for refs in present]

    def inputs(self, roots: Roots, unit: Unit) -> list[Path]:
        refs = roots.annotations / unit.spec["refs"]
        return [refs, refs.parent / "instances.json"]

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        """`(RefsFile, ref)` per ref of the unit's pickle; a refused or non-list pickle is one reject."""
        refs_file = unit.spec["refs"]
        index = read_index(roots.annotations / Path(refs_file).parent / "instances.json")
        try:
            refs = safe_loads((roots.annotations / refs_file).read_bytes(), refs_file)
        except Reject as reject:  # not a record's failure: the whole file is unreadable
            yield refs_file, reject
            return
        if not isinstance(refs, list):
            yield refs_file, Reject("bad_refs", f"expected a list of refs, found {type(refs).__name__}", refs_file)
            return
        # orphans too, so that a ref naming one is told its image is unlisted, not its annotation
        annotations = {ann["id"]: ann for anns in (*index.annotations.values(), index.orphans) for ann in anns}
        shared = RefsFile(refs_file, unit.name, index, annotations)
        for i, ref in enumerate(refs):
            ref_id = ref.get("ref_id") if isinstance(ref, dict) else None
            yield f"{refs_file}:refs[ref_id={ref_id}]" if is_int(ref_id) else f"{refs_file}:refs[{i}]", (shared, ref)

    def outcomes(self, roots: Roots, record: tuple[RefsFile, Any], locator: str) -> Iterator[Outcome]:
        refs, ref = record
        if not isinstance(ref, dict):
            raise Reject("bad_ref", f"a ref is {type(ref).__name__}, not an object", locator)
        if not (is_int(ref.get("ref_id")) and is_int(ref.get("ann_id")) and isinstance(ref.get("split"), str)):
            raise Reject("bad_ref", "a ref needs integer ref_id and ann_id and a string split", locator)
        ann = refs.annotations.get(ref["ann_id"])
        if ann is None:
            raise Reject("annotation_missing", f"ann_id {ref['ann_id']} is not in instances.json", locator)
        image = refs.index.images.get(ann.get("image_id"))
        if image is None:
            raise Reject("image_record_missing", f"annotation {ann['id']} names image {ann.get('image_id')}, "
                         "which instances.json does not list", locator)
        relative = f"{IMAGES}/{image.get('file_name')}"
        width, height = checked_image(roots, relative, image, locator)
        category = refs.index.categories.get(ann.get("category_id"), {"name": ""})
        region = annotation_region(ann, category_label(category["name"]) or None, width, height, locator)
        sentences = ref.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            raise Reject("no_sentences", f"sentences is {str(sentences)[:60]}, not a non-empty list", locator)
        media = {"kind": "image", "path": relative, "width": width, "height": height}
        meta = {"ref_id": ref["ref_id"], "ann_id": ann["id"], **{key: ann.get(key) for key in ("image_id", "category_id")}}
        for i, sentence in enumerate(sentences):
            where = f"{locator}.sentences[{i}]"
            yield from isolated(where, self._sentence_sample, refs, ref, media, region, meta, sentence, where)

    def _sentence_sample(self, refs: RefsFile, ref: dict[str, Any], media: dict[str, Any], region: Region,
                         meta: dict[str, Any], sentence: object, locator: str) -> Sample:
        if not isinstance(sentence, dict) or not is_int(sentence.get("sent_id")) or not isinstance(sentence.get("sent"), str):
            raise Reject("bad_sentence", f"a sentence needs an integer sent_id and a string sent: {str(sentence)[:60]}", locator)
        return self.sample(
            subset=refs.subset, native_id=f"{ref['ref_id']}_{sentence['sent_id']}", file=refs.file, locator=locator,
            split=ref["split"], task="phrase_caption", media=media, regions=[region],
            conversation=[{"role": "user", "text": QUESTION}, {"role": "assistant", "text": normalize_text(sentence["sent"])}],
            meta=meta | {"sent_id": sentence["sent_id"]},
        )

    def write_fixture(self, root: Path) -> None:
        write_fixture(root)


PERSON, DOG = (4, 4, 24, 44), (30, 20, 60, 44)


def _ref(ref_id: int, ann_id: int, image_id: int, split: str, *sentences: tuple[int, str]) -> dict[str, Any]:
    """A ref as the release writes it: `tokens` are the raw sentence's lower-case words, `sent` joins them."""
    tokens = {s: re.findall(r"[a-z0-9']+", raw.lower()) for s, raw in sentences}
    return {"ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "category_id": 1, "split": split,
            "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg", "sent_ids": [s for s, _ in sentences],
            "sentences": [{"sent_id": s, "raw": raw, "sent": " ".join(tokens[s]), "tokens": tokens[s]} for s, raw in sentences]}


def write_fixture(root: Path) -> None:
    """refcoco (unc), refcoco+ (unc) and refcocog (umd) over two train2014 images; traps: a ref
    whose annotation is missing, a ref whose image file is missing, raw sentences with messy
    whitespace and case, a ref that is no dict, a sentence whose `sent_id` is `True`."""
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
            "not a ref",
            _ref(6, 1002, 101, "train", (61, "Dog, right"), (62, "brown dog")),
        ],
        "refcoco+/refs(unc).p": [_ref(5, 1001, 101, "train", (51, "man in red"))],
        "refcocog/refs(umd).p": [_ref(10, 1002, 101, "val", (101, "A brown dog lying on the right."))],
    }
    refs["refcoco/refs(unc).p"][5]["sentences"][0]["sent_id"] = True
    for refs_file, records in refs.items():
        write_json(root / Path(refs_file).parent / "instances.json", instances)
        # protocol 2, as the Python 2 era release files
        (root / refs_file).write_bytes(pickle.dumps(records, protocol=2))
