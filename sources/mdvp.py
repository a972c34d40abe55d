"""MDVP-Data (Draw-and-Understand / SPHINX-V fine-tuning set) -> point- and box-prompt region samples.

The annotation root holds `MDVP-Data/` either under `stage_2_fine-tuning/` (the Hugging Face
repository as downloaded) or directly (a copy of that folder alone); sample ids do not depend
on which. MDVP ships no images and its `image` fields carry the authors' own prefixes
(`/path/to/vg/VG_100K/1.jpg`, `coco/train2017/x.jpg`). The adapter takes the longest trailing part
of the recorded path that a declared root holds, each part tried under `images/` and then as is
(a media root such as a COCO folder holding `train2017/`): `images/path/to/vg/VG_100K/1.jpg`,
`path/to/vg/VG_100K/1.jpg`, `images/to/vg/VG_100K/1.jpg`, ..., down to `images/1.jpg` and `1.jpg`
(the basename, as the official loaders do with `split('/')[-1]`). So a kept layout
(`images/vg/VG_100K/1.jpg`), a flat folder and shared media folders all work, without editing
any JSON. A recorded path holding `..` is rejected (`path_escapes_root`) before any lookup.

Prompts: `points: [[x, y], ...]` -> prompt `point`; `bbox: [[x, y, w, h], ...]` -> prompt `box`
(`[x0, y0, x1, y1]`), both absolute pixels (finite numbers; `true` is no coordinate) and never
turned into masks. A point or box outside the image is rejected (`point_out_of_frame` /
`degenerate_box`), not clipped: MDVP prompts are drawn by annotators on the image, so one
outside it means a wrong image or size. The official loader keeps the first 10 prompts; we keep
them all (the text may name Mark 11 and beyond), so a consumer with a 10-prompt model must
filter on `len(regions)`.

Text: `<Mark N>` / `<Region N>` / bench-style `Region N` (1-based, prompt order) -> `<obj{N-1}>`
via `dialects.MDVP`; prompts never named are dropped (`meta.unreferenced_regions`); leading
`gpt` turns are dropped (`meta.dropped_leading_turns`).

Subset = the file's path under MDVP-Data without `.json` (`/` -> `:`); sample id
`mdvp/{subset}/{index in the file}`. Task by file family: `detailed_caption` / `detail_caption` in
the path -> detailed_caption, `brief_caption` -> phrase_caption, anything else -> region_qa.

    pixelrefer ingest --source mdvp --root /data/mdvp --out build/
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from schemas import Reject, masks
from sources import dialects, fixtures
from sources.base import Outcome
from sources.common import find_media, image_size, is_number
from sources.jsonrecords import JsonRecord, JsonRecordsAdapter
from sources.roots import Roots

# Where MDVP-Data may sit under the annotation root, in the order looked at.
DATA_DIRS = ("stage_2_fine-tuning/MDVP-Data", "MDVP-Data")
DATA = DATA_DIRS[0]
IMAGES = "images"
# Substring of the file's path under MDVP-Data -> task; first match wins, else region_qa.
FAMILIES: dict[str, str] = {
    "detailed_caption": "detailed_caption",
    "detail_caption": "detailed_caption",
    "brief_caption": "phrase_caption",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_:-]")


def _number_list(value: object, length: int) -> list[float] | None:
    if isinstance(value, (list, tuple)) and len(value) == length and all(is_number(v) for v in value):
        return [float(v) for v in value]
    return None


# prompt kind -> (record field, numbers per prompt, native numbers -> region frame fields)
PROMPTS = {
    "point": ("points", 2, lambda xy: {"point": xy}),
    "box": ("bbox", 4, lambda xywh: {"box": masks.xywh_to_xyxy(xywh)}),
}


class MdvpAdapter(JsonRecordsAdapter):
    name = "mdvp"
    version = "2"
    license = "CC-BY-NC-4.0"
    LAYOUT = """\
stage_2_fine-tuning/MDVP-Data/**/*.json   as released: [{image, conversations, points | bbox}]
                                          (or MDVP-Data/**/*.json without the stage folder)
images/                                   the image sets the records name (COCO, VG, ADE20K, ...),
                                          here or in declared media roots (with or without images/)
"""

    def files(self, roots: Roots) -> list[str]:
        root = roots.annotations
        found = [d for d in DATA_DIRS if (root / d).is_dir()]
        if len(found) > 1:  # the same files twice would give every sample twice
            raise ValueError(f"{root} holds both {' and '.join(found)}; keep one")
        files = sorted(p.relative_to(root).as_posix() for d in found for p in (root / d).glob("**/*.json"))
        if not files:
            raise FileNotFoundError(f"no JSON files under {' or '.join(str(root / d) for d in DATA_DIRS)}; expected:\n{self.LAYOUT}")
        return files

    def subset(self, file: str) -> str:
        data = next(d for d in DATA_DIRS if file.startswith(f"{d}/"))
        relative = PurePosixPath(file).relative_to(data).with_suffix("").as_posix()
        return _UNSAFE.sub("_", relative.replace("/", ":"))

    def outcomes(self, roots: Roots, record: JsonRecord, locator: str) -> Outcome:
        value = record.value
        if not isinstance(value, dict) or not isinstance(value.get("image"), str):
            raise Reject("bad_record", "expected an object with an `image` path", locator)
        path = find_media(roots, _image_candidates(value["image"], locator), locator)
        width, height = image_size(roots, path, locator)
        kind, prompts = _prompts(value, locator)
        turns, named, notes = dialects.map_conversation(dialects.MDVP, value.get("conversations"), len(prompts), locator)
        to_frame = PROMPTS[kind][2]
        return self.sample(
            subset=self.subset(record.file), native_id=record.index, file=record.file, locator=locator,
            task=next((t for k, t in FAMILIES.items() if k in record.file.lower()), "region_qa"),
            media={"kind": "image", "path": path, "width": width, "height": height},
            regions=[{"prompt": kind, "frames": [{"frame": 0, **to_frame(prompts[n - 1])}]} for n in named],
            conversation=turns,
            meta={"image": value["image"], "num_prompts": len(prompts), **notes},
        )

    def write_fixture(self, root: Path) -> None:
        """Three 64x48 images under images/ in different layouts; traps: foreign prefix, basename
        only, point and box outside the image, `..` path, missing image, 12 prompts, leading gpt."""
        a, b = (8, 8, 24, 20), (30, 20, 50, 40)
        fixtures.write_image(root / IMAGES / "vg/VG_100K/2345678.jpg", 64, 48, [a, b], seed=1)
        fixtures.write_image(root / IMAGES / "coco/train2017/000000000201.jpg", 64, 48, [a, b], seed=2)
        fixtures.write_image(root / IMAGES / "sa_1.jpg", 64, 48, [b], seed=3)
        q = dialects.native_dialogue
        ask = "<image>\nPlease provide a detailed description of each marked region in the image."
        fixtures.write_json(root / DATA / "detailed_caption/gpt4v_vg_detailed_caption_point.json", [
            {"image": "/mnt/authors/data/vg/VG_100K/2345678.jpg", "points": [[16, 14], [40.5, 30]],
             "conversations": q(ask, "<Mark 1>: A red box.\n<Mark 2>: A blue   square.")},
            {"image": "vg/VG_100K/2345678.jpg", "points": [[70, 10]], "conversations": q(ask, "<Mark 1>: Off the edge.")},
            {"image": "../../outside/2345678.jpg", "points": [[1, 1]], "conversations": q(ask, "<Mark 1>: Escape.")},
            {"image": "coco/train2017/000000000404.jpg", "points": [[1, 1]], "conversations": q(ask, "<Mark 1>: Lost.")},
            {"image": "sam/foreign/prefix/sa_1.jpg", "points": [[5, 5], [40, 30]],
             "conversations": [{"from": "gpt", "value": "Hi."}, *q("What is <Mark 2>?", "A blue square.")]},
        ])
        twelve = [[x, 2, 4, 4] for x in range(0, 60, 5)]
        fixtures.write_json(root / DATA / "QA/gpt4v_coco_qa_box.json", [
            {"image": "coco/train2017/000000000201.jpg", "bbox": [[8, 8, 16, 12], [30, 20, 20, 20]],
             "conversations": q("What is in <Region 2>?", "A blue square to the right of Region 1.")},
            {"image": "coco/train2017/000000000201.jpg", "bbox": [[50, 40, 20, 20]], "conversations": q("<Mark 1>?", "Half out.")},
            {"image": "coco/train2017/000000000201.jpg", "bbox": twelve,
             "conversations": q("Name the marks.", " ".join(f"<Mark {i}>" for i in range(1, 13)))},
            {"image": "coco/train2017/000000000201.jpg", "points": [[1, 1]], "bbox": [[1, 1, 2, 2]],
             "conversations": q("<Mark 1>?", "Both.")},
        ])
        fixtures.write_json(root / DATA / "brief_caption/gpt4v_coco_brief_caption_box.json", [
            {"image": "coco/train2017/000000000201.jpg", "bbox": [[8, 8, 16, 12]],
             "conversations": q("Briefly describe <Mark 1>.", "A red box.")},
        ])


def _image_candidates(recorded: str, locator: str) -> list[tuple[str, str]]:
    """Every trailing part of the recorded path, longest first, under `images/` then as is."""
    parts = [p for p in PurePosixPath(recorded.replace("\\", "/")).parts if p not in ("/", ".")]
    if ".." in parts:
        raise Reject("path_escapes_root", f"image path {recorded!r} climbs out with '..'", locator)
    if not parts:
        raise Reject("bad_record", "empty image path", locator)
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    return [(under, tail) for tail in tails for under in (IMAGES, "")]


def _prompts(record: dict, locator: str) -> tuple[str, list[list[float]]]:
    """The record's prompt kind and its prompts, checked for shape (one kind per record)."""
    kinds = [kind for kind, (field, _, _) in PROMPTS.items() if field in record]
    if len(kinds) != 1:
        raise Reject("bad_prompt", f"a record needs exactly one of `points` / `bbox`, found {kinds}", locator)
    field, length, _ = PROMPTS[kinds[0]]
    values = record[field] if isinstance(record[field], list) else [None]
    prompts = [_number_list(v, length) for v in values]
    if not prompts or None in prompts:
        raise Reject("bad_prompt", f"`{field}` must be a non-empty list of {length}-number lists", locator)
    return kinds[0], prompts
