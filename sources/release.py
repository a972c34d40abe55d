"""The official PixelRefer / PixelRefer-Lite training JSONs -> samples (`pixelrefer-release`).

Reads the mixtures the PixelRefer authors trained on (and what `pixelrefer export` writes), in
the format of `PixelRefer/README.md`, read by `LazySupervisedDataset` (pixelrefer_official.md 1a):

    {"image": "coco/train2017/x.jpg" | ["..."],                  # or
     "video": ["clip.mp4" | "frames_dir/"] | [frame, ...] | "clip.mp4",  (+ "timestamps" for a frame list)
     "conversations": [{"from": "human"|"gpt"|"system", "value": "<image>\\n... <region0><region> ..."}],
     "masks": [mask, ...]                       # image: one per object
            | [{"<frame>": mask, ...}, ...],    # video: per object, frame index -> mask
     "height": H, "width": W}                   # needed for polygons and uncompressed RLE

A mask is a COCO polygon list, an uncompressed or a compressed RLE. The VideoRefer-700K dialect
(`annotation: [{"<frame>": {"segmentation": mask|null}}]`, `video` a string) is read too.

Placeholders: the k-th `<region>` (or `[<region>]`) across the turns binds the k-th entry of
`masks` and becomes `<obj{k}>`; a name written just before it (`<region0><region>`,
`<object1><region>`) is bound with it, so later mentions of that name (`<region0>`) become the
same `<obj{k}>`. Leading non-human turns are dropped, as the official loader drops them (noted in
`meta`). The count of `<region>` tokens must equal the number of objects, else the record is a
`region_mask_mismatch` reject (the official loader silently swaps such a record for a random
other one; PixelRefer issue #15): this includes PixelRefer's one-`<region>`-per-(object, frame)
form of a multi-frame object, which the release's "single mask per object" rule excludes.

Task, inferred from the conversation shape (the JSON has no task field):
  1. image, every answer at most 3 words                 -> recognition
  2. several rounds, or a single question ending in "?"  -> region_qa (image) / video_qa (video)
  3. a single answer of at most 20 words                 -> phrase_caption
  4. otherwise                                           -> detailed_caption (image) / video_caption (video)

Media paths in the JSON are relative to the declared roots (the annotation folder, then each
media folder: `pixelrefer-release: {annotations: /data/pixelrefer, media: [/data/media]}`).
A frame folder is read as its sorted image files at 3 fps, as the official loader does; frame
indices of a video file are PyAV's decode order. `masked_video` is not read.

Streaming: one pass per file records byte spans of ~`UNIT_BYTES` (`sources.jsonarray.spans`);
a unit seeks to its span and parses only it. Sample ids are `pixelrefer-release/<subset>/<index>`
(the official loader numbers records by position too); a record's own `id` goes to `meta`.

    pixelrefer ingest --source pixelrefer-release --root /data/pixelrefer --out build/
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from schemas import Reject, Sample, Turn, masks
from sources import fixtures, jsonarray
from sources.base import Adapter, Unit
from sources.common import FRAME_FOLDER_FPS, image_size, mask_region, native_turns, video_info
from sources.dialects import PositionalBinder
from sources.roots import Roots

# file name -> subset (one record format; Lite differs only in how its trainer reads them)
RELEASE_FILES = {
    "PixelRefer_stage1_trainingdata.json": "pixelrefer-stage1",
    "PixelRefer_stage2_trainingdata.json": "pixelrefer-stage2",
    "PixelRefer-Lite_stage1_trainingdata.json": "pixelrefer-lite-stage1",
    "PixelRefer-Lite_stage2_trainingdata.json": "pixelrefer-lite-stage2",
}
UNIT_BYTES = 16 << 20
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
RECOGNITION_WORDS = 3
PHRASE_WORDS = 20
_FRAME_KEY = re.compile(r"[0-9]+")


def _needs_size(mask: Any) -> bool:
    """Polygons and uncompressed RLEs carry no size: the official loader takes the record's."""
    return (isinstance(mask, list) and mask != []) or (isinstance(mask, dict) and isinstance(mask.get("counts"), list))


def infer_task(kind: str, turns: list[Turn]) -> str:
    """The task of a conversation by its shape (rule in the module docstring)."""
    users = [t.text for t in turns if t.role == "user"]
    answers = [len(t.text.split()) for t in turns if t.role == "assistant"]
    longest = max(answers, default=0)  # no answer at all is validation's role_order reject
    if kind == "image" and longest <= RECOGNITION_WORDS:
        return "recognition"
    if len(users) > 1 or users[0].rstrip().endswith("?"):
        return "region_qa" if kind == "image" else "video_qa"
    if longest <= PHRASE_WORDS:
        return "phrase_caption"
    return "detailed_caption" if kind == "image" else "video_caption"


class ReleaseAdapter(Adapter):
    name = "pixelrefer-release"
    version = "1"
    license = "per record: each image or video keeps the terms of its origin dataset (COCO, LVIS, Panda-70M, ...)"
    LAYOUT = """\
PixelRefer_stage1_trainingdata.json         (any of the four; at least one)
PixelRefer_stage2_trainingdata.json
PixelRefer-Lite_stage1_trainingdata.json
PixelRefer-Lite_stage2_trainingdata.json
<media paths the JSONs name>                (here or in a declared media root)
"""

    def units(self, roots: Roots) -> list[Unit]:
        files = [name for name in RELEASE_FILES if (roots.annotations / name).is_file()]
        if not files:
            raise FileNotFoundError(f"{roots.annotations}: none of {', '.join(RELEASE_FILES)}")
        units = []
        for file in files:
            for span in jsonarray.spans(roots.annotations / file, UNIT_BYTES):
                spec = {"file": file, **{k: span[k] for k in ("start", "end", "first", "count")}}
                units.append(Unit(self.name, f"{file}:{span['first']:010d}", spec))
        return units

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        file = unit.spec["file"]
        for index, record in enumerate(jsonarray.read_span(roots.annotations / file, unit.spec), start=unit.spec["first"]):
            yield f"{file}[{index}]", (file, index, record)

    def outcomes(self, roots: Roots, record: Any, locator: str) -> Sample:
        file, index, record = record
        if not isinstance(record, dict) or ("image" in record) == ("video" in record):
            raise Reject("bad_media", "a record needs exactly one of `image` and `video`", locator)
        objects = record["masks"] if "masks" in record else record.get("annotation")
        if not isinstance(objects, list) or not objects:
            raise Reject("no_masks", "no `masks` (or `annotation`) list of objects", locator)
        conversations = record.get("conversations")
        if not isinstance(conversations, list) or not all(isinstance(t, dict) for t in conversations):
            raise Reject("bad_turn", "`conversations` must be a list of {from, value} objects", locator)
        skip = next((i for i, t in enumerate(conversations) if t.get("from") == "human"), len(conversations))
        binder = PositionalBinder(locator)
        turns = native_turns(conversations[skip:], binder, locator)
        if not turns:
            raise Reject("bad_turn", "no human turn", locator)
        if binder.seen != len(objects):
            raise Reject("region_mask_mismatch", f"{binder.seen} <region> tokens for {len(objects)} objects", locator)
        media = self._image(roots, record, locator) if "image" in record else self._video(roots, record, locator)
        height, width = media["height"], media["width"]
        native = [self._frames(entry, media["kind"], f"{locator} object {i}") for i, entry in enumerate(objects)]
        declared = (record.get("height"), record.get("width"))
        if declared == (None, None):
            if any(_needs_size(m) for frames in native for _, m in frames):
                raise Reject("polygon_without_size", "polygons and uncompressed RLEs need the record's height and width", locator)
        elif declared != (height, width):
            raise Reject("mask_size_mismatch", f"record height/width {list(declared)} vs media {[height, width]}", locator)
        regions = [mask_region(frames, height, width, f"{locator} object {i}") for i, frames in enumerate(native)]
        meta = {"file": file, **({"id": record["id"]} if "id" in record else {}),
                **({"dropped_leading_turns": skip} if skip else {})}
        return self.sample(subset=RELEASE_FILES[file], native_id=index, file=file, locator=locator,
                           task=infer_task(media["kind"], turns), media=media, regions=regions,
                           conversation=turns, meta=meta)

    @staticmethod
    def _image(roots: Roots, record: dict, locator: str) -> dict:
        image = record["image"]
        if isinstance(image, list) and len(image) == 1:
            image = image[0]
        if not isinstance(image, str):
            raise Reject("bad_media", f"`image` must be one path, got {str(image)[:80]}", locator)
        width, height = image_size(roots, image, locator)
        return dict(kind="image", path=image, width=width, height=height)

    @staticmethod
    def _video(roots: Roots, record: dict, locator: str) -> dict:
        """A video file or frame folder (a path or a one-element list), or a list of frame files."""
        video = record["video"]
        if isinstance(video, list) and len(video) == 1:
            video = video[0]
        if isinstance(video, list) and len(video) > 1 and all(isinstance(v, str) for v in video):
            for frame in video[1:]:
                if not roots.media_path(frame, locator).is_file():
                    raise Reject("video_missing", f"no frame file at {frame}", locator)
            width, height = image_size(roots, video[0], locator)
            return dict(kind="video", path=str(Path(video[0]).parent), frames=video,
                        timestamps=record.get("timestamps") or [], width=width, height=height)
        if not isinstance(video, str):
            raise Reject("bad_media", f"`video` must be a path or a list of paths, got {str(video)[:80]}", locator)
        path = roots.media_path(video, locator)
        if path.is_dir():
            folder = video.rstrip("/")
            frames = sorted(f"{folder}/{p.name}" for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not frames:
                raise Reject("video_empty", f"frame folder {video} holds no images", locator)
            width, height = image_size(roots, frames[0], locator)
            return dict(kind="video", path=folder, frames=frames, fps=FRAME_FOLDER_FPS, width=width, height=height)
        if not path.is_file():
            raise Reject("video_missing", f"no video file or frame folder at {video}", locator)
        width, height, count, fps = video_info(roots, video, locator)
        return dict(kind="video", path=video, num_frames=count, fps=fps, width=width, height=height)

    @staticmethod
    def _frames(entry: Any, kind: str, where: str) -> list[tuple[int, Any]]:
        """One object's native masks as sorted `(frame, mask)`: the mask itself for an image,
        `{frame: mask}` (or `{frame: {"segmentation": mask}}`) for a video."""
        if kind == "image":
            return [(0, entry)]
        if isinstance(entry, list) and len(entry) == 1:
            entry = entry[0]  # 700K's ytb_vos QA records wrap the frame dict in a list
        if not isinstance(entry, dict):
            raise Reject("bad_annotation", f"expected a {{frame: mask}} dict, got {str(entry)[:80]}", where)
        present: dict[int, Any] = {}
        for key, value in entry.items():
            if not _FRAME_KEY.fullmatch(str(key)) or int(key) in present:
                raise Reject("bad_frame_key", f"frame key {key!r} is not a distinct non-negative integer", where)
            present[int(key)] = value.get("segmentation") if isinstance(value, dict) and "segmentation" in value else value
        return sorted(present.items())

    def write_fixture(self, root: Path) -> None:
        write_fixture(root)


# ---- fixture: 32x24 images and a 3-frame clip (frame folder and mp4), filled blocks ----

FIXTURE_SIZE = (32, 24)
IMAGE_RECTS: list[fixtures.Rect] = [(2, 2, 12, 10), (16, 8, 30, 20)]
LONG_ANSWER = ("A red block sits in the upper left corner of the picture, with a flat grey background "
               "around it and a green block further down to its right.")
LONG_VIDEO_ANSWER = ("A red block starts near the left edge of the clip and slides steadily to the right over "
                     "three frames, keeping its size and colour against the grey background.")


def clip_rect(frame: int) -> fixtures.Rect:
    """Where the block is on `frame` of the fixture clips."""
    return (4 + 6 * frame, 6, 12 + 6 * frame, 14)


def clip_rle(frame: int) -> dict:
    return masks.encode(fixtures.rect_mask(*FIXTURE_SIZE, clip_rect(frame)))


def image_rle(i: int) -> dict:
    return masks.encode(fixtures.rect_mask(*FIXTURE_SIZE, IMAGE_RECTS[i]))


def _write_mp4(path: Path) -> None:
    """A 3-frame clip at 3 fps."""
    fixtures.write_video(path, [fixtures.draw(*FIXTURE_SIZE, [clip_rect(i)], seed=i) for i in range(3)], fps=3)


def _runs(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts of a mask: column-major run lengths, starting with zeros."""
    flat = mask.flatten(order="F")
    bounds = [0, *(np.flatnonzero(np.diff(flat)) + 1), flat.size]
    runs = [int(b - a) for a, b in zip(bounds, bounds[1:])]
    return [0, *runs] if flat[0] else runs


def _turns(*values: str) -> list[dict]:
    return [{"from": "gpt" if i % 2 else "human", "value": v} for i, v in enumerate(values)]


def write_fixture(root: Path) -> None:
    """A PixelRefer stage-1 file (images) and a Lite stage-1 file (videos), with the traps."""
    width, height = FIXTURE_SIZE
    fixtures.write_image(root / "coco/train2017/000000000001.jpg", width, height, IMAGE_RECTS, seed=1)
    for i in range(3):
        fixtures.write_image(root / f"videos/clip_a/{i:05d}.jpg", width, height, [clip_rect(i)], seed=i)
    _write_mp4(root / "videos/clip_b.mp4")
    image = "coco/train2017/000000000001.jpg"
    ring = fixtures.rect_polygon(IMAGE_RECTS[1])
    uncompressed = {"size": [height, width], "counts": _runs(fixtures.rect_mask(width, height, IMAGE_RECTS[1]))}
    stage1 = [
        {"image": image, "conversations": _turns("<image>\nWhat is <region0><region>?", "A red block."),
         "masks": [image_rle(0)]},
        {"image": [image], "height": height, "width": width,  # polygon with its size; gpt turn first
         "conversations": [{"from": "gpt", "value": "Hello."}, *_turns("Please describe <region> in detail.", LONG_ANSWER)],
         "masks": [[ring]]},
        {"id": "qa-7", "image": image, "height": height, "width": width,  # the green block first, as uncompressed RLE
         "conversations": _turns("<image>\nThere are two regions in the image: <region0><region>, <region1><region>. "
                                 "Which one is larger?", "<region0> is larger than <region1>.",
                                 "Is <region1> red?", "Yes, <region1> is red."),
         "masks": [uncompressed, image_rle(0)]},
        {"image": image, "conversations": _turns("<image>\nDo <region> and <region> touch?", "No."),  # trap
         "masks": [image_rle(0)]},
        {"image": "coco/train2017/000000000009.jpg",  # trap: no such image
         "conversations": _turns("<image>\nWhat is <region>?", "A block."), "masks": [image_rle(0)]},
        {"image": image, "conversations": _turns("<image>\nWhat is <region>?", "A block."),  # trap: no height/width
         "masks": [[ring]]},
        {"image": "../outside/000000000001.jpg",  # trap: climbs out of the roots
         "conversations": _turns("<image>\nWhat is <region>?", "A block."), "masks": [image_rle(0)]},
    ]
    frames = [f"videos/clip_a/{i:05d}.jpg" for i in range(3)]
    lite = [
        {"video": ["videos/clip_a"], "masks": [{"2": clip_rle(2), "0": clip_rle(0)}],
         "conversations": _turns("<video>\nDescribe <object0><region> in the video.", LONG_VIDEO_ANSWER)},
        {"video": frames, "timestamps": [0.0, 0.5, 1.0], "masks": [{"1": clip_rle(1)}],
         "conversations": _turns("<video>\nWhat does <object0><region> do?", "It slides to the right.")},
        {"id": "panda_1", "video": "videos/clip_b.mp4",  # VideoRefer-700K dialect
         "annotation": [{"0": {"segmentation": clip_rle(0)}, "1": {"segmentation": None}}],
         "conversations": _turns("Give a short caption of [<region>].\n<video>", "a sliding red block")},
        {"video": ["videos/clip_a"], "masks": [{"0": clip_rle(0), "1": clip_rle(1)}],  # trap: one <region> per frame
         "conversations": _turns("<video>\nHow does <region><region> move?", "Right.")},
    ]
    fixtures.write_json(root / "PixelRefer_stage1_trainingdata.json", stage1)
    fixtures.write_json(root / "PixelRefer-Lite_stage1_trainingdata.json", lite)
