"""LLaVA-style conversation data (LLaVA-Video-178K, LLaVA-OneVision) -> general QA samples.

Origin: the LLaVA instruction format (haotian-liu/LLaVA `docs/Finetune_Custom_Data.md`): a JSON
list (or JSONL) of records `{"id", "image" | "video" (optional), "conversations": [{"from":
"human" | "gpt" | "system", "value"}]}`, with `<image>` / `<video>` marking where the picture goes.
LLaVA-Video-178K (HF `lmms-lab/LLaVA-Video-178K`) ships one folder per duration and source, e.g.
`0_30_s_academic_v0_1/0_30_s_academic_oe_v0_1_qa_processed.json`, whose `video` paths resolve
below that folder once its video tars are unpacked there; LLaVA-OneVision's single-image and
video parts (`lmms-lab/LLaVA-OneVision-Data`, exported to this JSON form) name an `image` or a
`video`, and its text-only parts name neither.

Every file under the root (`*.json` arrays, streamed by byte ranges, and `*.jsonl`) is read; the
subset is the file's name without suffix. One `general_qa` sample per record, with no regions:
an image record (one image; a list of several is `multi_image`), a video record (a file, probed
with PyAV), or a text-only record (no media: the one task the schema allows it for). A media path
is looked up below the annotation file's folder first, then below the declared roots. Tags are
dropped from the text; anything else of another dialect (`<region1>`, `<obj3>`) is rejected by
validation rather than guessed at.

    pixelrefer ingest --source llava --root /data/LLaVA-Video-178K --out out/
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas import Media, Reject, Sample
from sources import fixtures, jsonarray
from sources.base import Adapter, Unit
from sources.common import find_media, image_size, line_spans, native_turns, read_lines, video_info
from sources.roots import Roots

UNIT_BYTES = 16 << 20  # ~10k text records; media records cost one header read each
_UNSAFE = re.compile(r"[^A-Za-z0-9_:-]")


def subset_of(file: str) -> str:
    return _UNSAFE.sub("_", Path(file).stem)


class LlavaAdapter(Adapter):
    name = "llava"
    version = "1"
    license = "per part: LLaVA-Video-178K Apache-2.0 (videos keep their origin's terms); LLaVA-OneVision per source"
    LAYOUT = """\
<folder>/<name>.json | <name>.jsonl   LLaVA-style records {id, image | video (optional), conversations}, at any depth
<folder>/<media paths>                 the images and videos the records name, below the file's folder
                                       (e.g. LLaVA-Video-178K's unpacked tars) or below a declared root
"""

    def units(self, roots: Roots) -> list[Unit]:
        root = roots.annotations
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in (".json", ".jsonl") and p.is_file())
        if not files:
            raise FileNotFoundError(f"{root}: no *.json / *.jsonl conversation files (expected layout:\n{self.LAYOUT})")
        seen: dict[str, str] = {}
        for file in files:
            if seen.setdefault(subset_of(file), file) != file:
                raise ValueError(f"{seen[subset_of(file)]} and {file} both make subset {subset_of(file)!r}; rename one")
        units = []
        for file in files:
            path = root / file
            planned = line_spans(path, UNIT_BYTES) if path.suffix == ".jsonl" else jsonarray.spans(path, UNIT_BYTES)
            units += [Unit(self.name, f"{subset_of(file)}-{span['first']:08d}",
                           {"file": file, **{k: span[k] for k in ("start", "end", "first", "count")}}) for span in planned]
        return units

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        file = unit.spec["file"]
        path = roots.annotations / file
        if path.suffix == ".jsonl":
            numbered = read_lines(path, unit.spec, file)
        else:
            numbered = enumerate(jsonarray.read_span(path, unit.spec), start=unit.spec["first"])
        for index, record in numbered:
            yield f"{file}[{index}]", record if isinstance(record, Reject) else (file, index, record)

    def outcomes(self, roots: Roots, record: tuple[str, int, Any], locator: str) -> Sample:
        file, index, fields = record
        if not isinstance(fields, dict):
            raise Reject("bad_record", f"expected an object, got {type(fields).__name__}", locator)
        turns = fields.get("conversations")
        if not isinstance(turns, list) or not turns or not all(isinstance(t, dict) for t in turns):
            raise Reject("bad_turn", "`conversations` must be a non-empty list of {from, value} objects", locator)
        folder = Path(file).parent.as_posix()
        return self.sample(
            subset=subset_of(file), native_id=index, file=file, locator=locator, task="general_qa",
            media=_media(roots, fields, "" if folder == "." else folder, locator),
            conversation=native_turns(turns, lambda text: text, locator),  # no region dialect in LLaVA data
            meta={k: fields[k] for k in ("id", "data_source") if fields.get(k) is not None},
        )

    def write_fixture(self, root: Path) -> None:
        write_fixture(root)


def _media(roots: Roots, fields: dict, folder: str, locator: str) -> Media | None:
    """The record's image or video (None for a text-only record), looked up below `folder` first."""
    image, video = fields.get("image"), fields.get("video")
    if image is not None and video is not None:
        raise Reject("mixed_media", "the record names both an image and a video", locator)
    if isinstance(image, list):
        if len(image) != 1:
            raise Reject("multi_image", f"{len(image)} images; a sample holds one", locator)
        image = image[0]
    named = image if image is not None else video
    if named is None:
        return None
    if not isinstance(named, str):
        raise Reject("bad_record", f"media path {str(named)[:80]} is not a string", locator)
    relative = find_media(roots, [(folder, named), ("", named)], locator)
    if image is not None:
        width, height = image_size(roots, relative, locator)
        return Media(kind="image", path=relative, width=width, height=height)
    width, height, count, fps = video_info(roots, relative, locator)
    return Media(kind="video", path=relative, num_frames=count, fps=fps, width=width, height=height)


# ---- fixture: a LLaVA-Video-178K folder (mp4 beside its JSON) and OneVision image / text files ----

VIDEO_DIR = "0_30_s_academic_v0_1"
VIDEO_FILE = f"{VIDEO_DIR}/0_30_s_academic_oe_v0_1_qa_processed.json"
IMAGE_FILE = "onevision/sharegpt4v_coco.json"
TEXT_FILE = "onevision/magpie_pro_text.jsonl"


def _qa(question: str, answer: str) -> list[dict]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def write_fixture(root: Path) -> None:
    """Video QA (a good clip, a missing one), image QA (one image, an image list, a record that
    starts with the answer), and text-only JSONL (two records, both media kinds, a broken line)."""
    fixtures.write_video(root / VIDEO_DIR / "academic_source/Charades/ABC12.mp4",
              [fixtures.draw(32, 24, [(4 + 4 * i, 6, 12 + 4 * i, 14)], seed=i) for i in range(4)], fps=2)
    fixtures.write_json(root / VIDEO_FILE, [
        {"id": "ABC12", "data_source": "0_30_s_academic_v0_1", "video": "academic_source/Charades/ABC12.mp4",
         "conversations": _qa("<video>\nWhat is the person doing?", "Walking across the room.")},
        {"id": "ZZZ99", "data_source": "0_30_s_academic_v0_1", "video": "academic_source/Charades/ZZZ99.mp4",
         "conversations": _qa("<video>\nWhat happens?", "Nothing.")},
    ])
    fixtures.write_image(root / "onevision/coco/000000000009.jpg", 40, 30, [(5, 5, 20, 20)], seed=9)
    fixtures.write_json(root / IMAGE_FILE, [
        {"id": "9", "image": "coco/000000000009.jpg",
         "conversations": _qa("<image>\nDescribe the image.", "A red square on grey.") + _qa("Is it big?", "No.")},
        {"id": "10", "image": ["coco/000000000009.jpg", "coco/000000000009.jpg"],
         "conversations": _qa("<image><image>\nCompare.", "Same.")},
        {"id": "11", "image": "coco/000000000009.jpg", "conversations": _qa("<image>\nHi", "Hello")[::-1]},
    ])
    text = [
        {"id": "t0", "conversations": [{"from": "system", "value": "You are helpful."}, *_qa("What is 2 + 2?", "4")]},
        {"id": "t1", "conversations": _qa("Name a colour.", "Blue.")},
        {"id": "t2", "image": "coco/000000000009.jpg", "video": "academic_source/Charades/ABC12.mp4",
         "conversations": _qa("?", "!")},
    ]
    (root / TEXT_FILE).write_text("\n".join([*(json.dumps(t) for t in text), "{broken"]) + "\n", encoding="utf-8")
