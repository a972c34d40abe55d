"""VideoRefer-700K (`DAMO-NLP-SG/VideoRefer-700K`) and PixelRefer-format video JSON -> samples.

The release is `LAYOUT` below; `video` paths in the JSON are looked up in the declared roots.
Two record dialects give identical samples for the same content:
  * 700K `annotation`: `[{"<frame>": {"segmentation": rle|polygon|null}}, ...]`, `video` a string;
  * PixelRefer / VideoRefer-VideoLLaMA3 `masks`: `[{"<frame>": rle|polygon}, ...]`, `video` a
    one-element list (a file or frame folder) or a list of frame files (+ optional `timestamps`).
One entry per object, in the order the `<region>` placeholders appear across the turns; an intro
`<objectN><region>` binds the name `<objectN>` to that region. Frame keys are 0-based indices
into the decoded video (or the sorted frame folder); null or empty masks and missing frames mean
"absent on that frame" and are left out. A frame key past the video is `frame_out_of_range`,
decided without decoding: against the frame list, the header's frame count, or, for containers
whose header has none (Matroska, WebM), the duration times the frame rate plus one frame of
slack (containers differ on whether the last frame's duration counts); never past int32 (the
Arrow schema's frame type). The PixelRefer quirk of one `<region>` per (object, frame) is not
accepted: the count must equal the number of objects.

Streaming: the detailed file is 5.6 GB. `units()` makes one pass over each file
(`sources.jsonarray.spans`, or lines for JSONL) recording the byte range of every ~`UNIT_BYTES`
of records; `records()` seeks to its range and parses only those records, so memory is bounded by
a unit, not the file, and the total work is two reads of each file. Annotation licence Apache-2.0; each video keeps the terms of its origin
(Panda-70M for captions; MeViS, A2D-Sentences, YouTube-VOS for QA).

    pixelrefer ingest --source videorefer --root /data/VideoRefer-700K --out build/
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import av

from schemas import Reject, Sample, masks
from sources import fixtures, jsonarray
from sources.base import Adapter, Unit
from sources.common import FRAME_FOLDER_FPS, image_size, line_spans, mask_region, native_turns
from sources.dialects import PositionalBinder
from sources.roots import Roots

# file name -> (subset, task) of the released files.
RELEASE_FILES = {
    "videorefer-detailed-caption-125k.json": ("detailed-caption", "video_caption"),
    "videorefer-short-caption-500k.json": ("short-caption", "phrase_caption"),
    "videorefer-qa-75k.json": ("qa", "video_qa"),
}
# first keyword found in an other file's name -> task (else video_qa).
TASK_KEYWORDS = {"detailed": "video_caption", "short": "phrase_caption"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
UNIT_BYTES = 16 << 20  # ~350 detailed-caption records; bounds a worker's memory
FRAME_LIMIT = 2**31  # frame indices are int32 in the Arrow schema


def file_role(name: str) -> tuple[str, str]:
    """(subset, task) of an annotation file by its name."""
    if name in RELEASE_FILES:
        return RELEASE_FILES[name]
    task = next((t for k, t in TASK_KEYWORDS.items() if k in name), "video_qa")
    return re.sub(r"[^A-Za-z0-9_:-]", "_", Path(name).stem), task


class VideoInfo(NamedTuple):
    """What a video file's header says: size, frame count and rate (None when absent), and the
    frame bound: the count, else estimated from the duration, else None."""

    width: int
    height: int
    frames: int | None
    fps: float | None
    frame_bound: int | None


@functools.lru_cache(maxsize=1024)
def probe_video(path: Path) -> VideoInfo:
    """The header of a video file (nothing is decoded)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate) if stream.average_rate else None
        count = stream.frames or None
        seconds = float(stream.duration * stream.time_base) if stream.duration else (container.duration or 0) / av.time_base
        estimate = math.ceil(seconds * rate) + 1 if rate and seconds else None  # + 1: see the module docstring
        return VideoInfo(stream.codec_context.width, stream.codec_context.height, count, rate, count or estimate)


class VideoReferAdapter(Adapter):
    name = "videorefer"
    version = "2"  # 2: frame keys past the video (or int32) are frame_out_of_range
    license = "Apache-2.0 (annotations); videos keep the terms of their origin"
    LAYOUT = """\
videorefer-detailed-caption-125k.json   -> subset detailed-caption, task video_caption
videorefer-short-caption-500k.json      -> subset short-caption,    task phrase_caption
videorefer-qa-75k.json                  -> subset qa,               task video_qa
<other>.json | <other>.jsonl            -> subset <stem>; task by name: *detailed* video_caption,
                                           *short* phrase_caption, else video_qa
<video paths>                           a video file (read with PyAV) or a folder of frame images,
                                        here or in a declared media root
"""

    def units(self, roots: Roots) -> list[Unit]:
        root = roots.annotations
        files = sorted(p for p in root.iterdir() if p.suffix in (".json", ".jsonl") and p.is_file()) if root.is_dir() else []
        if not files:
            raise FileNotFoundError(f"{root}: no *.json/*.jsonl annotation files (expected e.g. {', '.join(RELEASE_FILES)})")
        units = []
        for path in files:
            planned = line_spans(path, UNIT_BYTES) if path.suffix == ".jsonl" else jsonarray.spans(path, UNIT_BYTES)
            for span in planned:
                spec = {"file": path.name, **{k: span[k] for k in ("start", "end", "first", "count")}}
                units.append(Unit(self.name, f"{path.name}:{span['first']:010d}", spec))
        return units

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        """`(file, index, record)` of one unit; a JSONL line that does not parse comes as a Reject."""
        file, spec = unit.spec["file"], unit.spec
        path = roots.annotations / file
        if path.suffix != ".jsonl":
            for index, record in enumerate(jsonarray.read_span(path, spec), start=spec["first"]):
                yield f"{file}[{index}]", (file, index, record)
            return
        with open(path, "rb") as f:
            f.seek(spec["start"])
            for index in range(spec["first"], spec["first"] + spec["count"]):
                line = f.readline()
                if line.strip():  # a blank line is no record
                    try:
                        yield f"{file}[{index}]", (file, index, json.loads(line))
                    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError, > 4300 digits, too deep
                        yield f"{file}[{index}]", Reject("bad_json", f"line {index + 1}: {type(err).__name__}: {str(err)[:200]}",
                                                         f"{file}[{index}]")

    def outcomes(self, roots: Roots, record: tuple[str, int, Any], locator: str) -> Sample:
        file, index, native = record
        return self.to_sample(roots, native, file, *file_role(file), index)

    def to_sample(self, roots: Roots, record: Any, file: str, subset: str, task: str, index: int) -> Sample:
        """One native record (either dialect) -> a validated sample."""
        locator = f"{file}[{index}]"
        if not isinstance(record, dict) or "video" not in record:
            raise Reject("not_video_record", "a record must be an object with a `video` path (image records are not read here)", locator)
        objects = record["annotation"] if "annotation" in record else record.get("masks")
        if not isinstance(objects, list) or not objects:
            raise Reject("no_masks", "no `annotation` or `masks` list of objects", locator)
        turns = record.get("conversations")
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            raise Reject("bad_turn", "`conversations` must be a list of {from, value} objects", locator)
        media, frame_bound = self._media(roots, record, locator)
        binder = PositionalBinder(locator)
        conversation = native_turns(turns, binder, locator)
        if binder.seen != len(objects):
            raise Reject("placeholder_count_mismatch", f"{binder.seen} <region> placeholders for {len(objects)} objects", locator)
        regions = [self._region(entry, media["height"], media["width"], frame_bound, f"{locator} object {i}")
                   for i, entry in enumerate(objects)]
        return self.sample(
            subset=subset, native_id=record.get("id", index), file=file, locator=locator, task=task,
            media=media, regions=regions, conversation=conversation,
            meta={k: record[k] for k in ("ratio", "frame_idx") if k in record},
        )

    @staticmethod
    def _media(roots: Roots, record: dict, locator: str) -> tuple[dict, int | None]:
        """The media dict of `video` (a file, a frame folder, or a list of frame files) and its frame bound."""
        video = record["video"]
        if isinstance(video, list) and len(video) == 1:
            video = video[0]
        if isinstance(video, list) and video and all(isinstance(v, str) for v in video):
            for frame in video:
                if not roots.media_path(frame, locator).is_file():
                    raise Reject("video_missing", f"no frame file at {frame}", locator)
            width, height = image_size(roots, video[0], locator)
            media = dict(kind="video", path=str(Path(video[0]).parent), frames=video, timestamps=record.get("timestamps") or [],
                         width=width, height=height)
            return media, len(video)
        if not isinstance(video, str):
            raise Reject("bad_video", f"`video` must be a path or a list of paths, got {str(video)[:80]}", locator)
        path = roots.media_path(video, locator)
        if path.is_dir():
            frames = sorted(f"{video.rstrip('/')}/{p.name}" for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not frames:
                raise Reject("video_empty", f"frame folder {video} holds no images", locator)
            width, height = image_size(roots, frames[0], locator)
            return dict(kind="video", path=video.rstrip("/"), frames=frames, fps=FRAME_FOLDER_FPS, width=width, height=height), len(frames)
        if not path.is_file():
            raise Reject("video_missing", f"no video file or frame folder at {video}", locator)
        try:
            info = probe_video(path)
        except (av.FFmpegError, IndexError) as err:
            raise Reject("video_unreadable", f"{video}: {err}", locator) from None
        media = dict(kind="video", path=video, num_frames=info.frames, fps=info.fps, width=info.width, height=info.height)
        return media, info.frame_bound

    @staticmethod
    def _region(entry: Any, height: int, width: int, frame_bound: int | None, where: str) -> dict:
        """One object's `{frame: mask}` dict -> a mask region over the frames where it is present."""
        if isinstance(entry, list) and len(entry) == 1:
            entry = entry[0]  # the ytb_vos QA records wrap the frame dict in a list
        if not isinstance(entry, dict):
            raise Reject("bad_annotation", f"expected a {{frame: mask}} dict, got {str(entry)[:80]}", where)
        limit = min(frame_bound or FRAME_LIMIT, FRAME_LIMIT)
        present: dict[int, Any] = {}
        for key, value in entry.items():
            if not re.fullmatch(r"[0-9]+", key):
                raise Reject("bad_frame_key", f"frame key {key[:40]!r} is not a non-negative integer", where)
            # a long key is out of range before int() parses it (Python refuses over 4300 digits)
            if len(key.lstrip("0")) > len(str(limit)) or int(key) >= limit:
                raise Reject("frame_out_of_range", f"frame {key[:40]} is past the last frame the video can have ({limit - 1})", where)
            frame = int(key)
            if frame in present:
                raise Reject("bad_frame_key", f"frame key {key!r} repeats frame {frame}", where)
            present[frame] = value.get("segmentation") if isinstance(value, dict) and "segmentation" in value else value
        return mask_region(sorted(present.items()), height, width, where)

    def write_fixture(self, root: Path) -> None:
        write_fixture(root)


# ---- fixture: two 3-frame 32x24 clips (a frame folder and an mp4), one moving block each ----

FIXTURE_SIZE = (32, 24)


def fixture_rect(frame: int) -> fixtures.Rect:
    """Where the block is on `frame` of both fixture clips."""
    return (4 + 6 * frame, 6, 12 + 6 * frame, 14)


def _fixture_rle(frame: int) -> dict:
    return masks.encode(fixtures.rect_mask(*FIXTURE_SIZE, fixture_rect(frame)))


def write_clip(path: Path, container_format: str = "mp4") -> None:
    """A 3-frame clip at 3 fps; a "matroska" one has no frame count in its header."""
    frames = [fixtures.draw(*FIXTURE_SIZE, [fixture_rect(i)], seed=i) for i in range(3)]
    fixtures.write_video(path, frames, fps=3, container_format=container_format)


def _turns(question: str, answer: str) -> list[dict]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def write_fixture(root: Path) -> None:
    """The three release files (annotation dialect) plus masks-dialect files, with the traps."""
    width, height = FIXTURE_SIZE
    for i in range(3):
        fixtures.write_image(root / f"videos/clip_a/{i:05d}.jpg", width, height, [fixture_rect(i)], seed=i)
    write_clip(root / "videos/clip_b.mp4")
    ring = fixtures.rect_polygon(fixture_rect(1))
    detailed = [
        {"id": "det_0", "video": "videos/clip_b.mp4", "ratio": 0.67,
         "conversations": _turns("<video>\nPlease give a detailed description of <region> in the video.",
                                 "A red block slides to the right."),
         # string keys out of order and a null segmentation (absent on frame 1)
         "annotation": [{"2": {"segmentation": _fixture_rle(2)}, "0": {"segmentation": _fixture_rle(0)},
                         "1": {"segmentation": None}}]},
        {"id": "det_1", "video": "videos/clip_b.mp4",
         "conversations": _turns("<video>\nDescribe <region>.", "Nothing."),
         "annotation": [{"0": {"segmentation": None}}]},  # trap: no frame at all
    ]
    short = [
        {"id": "short_0", "video": "videos/clip_a",
         "conversations": _turns("Give a short caption of <region>.\n<video>", "a sliding red block"),  # <video> at the end
         "annotation": [{"1": {"segmentation": [ring]}}]},
    ]
    qa = [
        {"id": "qa_0", "video": "videos/clip_a",
         "conversations": _turns("<video>\nThere are <object0><region> and <object1><region> in the video.\n"
                                 "Is <object0> left of <object1>?", "Yes, <object0> is left of <object1>."),
         "annotation": [{"0": {"segmentation": _fixture_rle(0)}}, {"2": {"segmentation": _fixture_rle(2)}}]},
        {"id": "qa_1", "video": "videos/clip_a",  # trap: two <region> for one object
         "conversations": _turns("<video>\nDo <region> and <region> touch?", "No."),
         "annotation": [{"0": {"segmentation": _fixture_rle(0)}}]},
        {"id": "qa_2", "video": "/videos/clip_b.mp4",  # trap: an absolute path
         "conversations": _turns("<video>\nWhat is <region>?", "A block."),
         "annotation": [{"0": {"segmentation": _fixture_rle(0)}}]},
    ]
    # det_0 again in the PixelRefer `masks` dialect: 1-element video list, bare RLEs, frame 1 missing.
    masks_detailed = [
        {"id": "det_0", "video": ["videos/clip_b.mp4"], "ratio": 0.67,
         "conversations": _turns("Please give a detailed description of <region> in the video.\n<video>",
                                 "A red block slides to the right."),
         "masks": [{"0": _fixture_rle(0), "2": _fixture_rle(2)}]},
    ]
    frames = [f"videos/clip_a/{i:05d}.jpg" for i in range(3)]
    fixtures.write_json(root / "videorefer-detailed-caption-125k.json", detailed)
    fixtures.write_json(root / "videorefer-short-caption-500k.json", short)
    fixtures.write_json(root / "videorefer-qa-75k.json", qa)
    fixtures.write_json(root / "pixelrefer-detailed-caption.json", masks_detailed)
    jsonl = [json.dumps({"id": "pr_0", "video": frames, "timestamps": [0.0, 0.5, 1.0],
                         "conversations": _turns("<video>\nWhat does <region> do?", "It slides."),
                         "masks": [{"1": _fixture_rle(1)}]}), "{not json"]
    (root / "pixelrefer-qa.jsonl").write_text("\n".join(jsonl) + "\n", encoding="utf-8")
