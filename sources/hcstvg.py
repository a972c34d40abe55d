"""HC-STVG v1 and v2 (Human-centric Spatio-Temporal Video Grounding) -> person video captions.

Origin: Tang et al., "Human-centric Spatio-Temporal Video Grounding With Visual Transformers"
(IEEE TCSVT 2021), released at github.com/tzhhhh123/HC-STVG. Each annotation file is one JSON
object, video file name (with its `.mp4`) -> record; the two versions name the same facts
differently (as the HC-STVG preprocessing of TubeDETR-derived code reads them, e.g.
TJUMMG/SGFDN `pre_proc/preproc_hcstvg.py` and `preproc_hcstvg_v2.py`):

    v1 (train.json, test.json):      img_num, width, height,    st_frame, st_time, ed_time, bbox, caption
    v2 (train_v2.json, val_v2.json): img_num, img_size [h, w],  st_frame, st_time, ed_time, bbox, English

`img_num` is the video's frame count; `st_frame` is the 1-based number of the first frame of the
person's tube and `bbox` holds one `[x, y, w, h]` per frame from there on, so the tube covers
frames `st_frame .. st_frame + len(bbox) - 1`; `st_time`/`ed_time` are its seconds. The version
is read from each record's fields, not from its file name.

One `video_caption` sample per video: ONE box-prompted region (the person; boxes stay boxes, the
segment stage may turn them into masks) on at most `max_frames` frames spread evenly over the
annotated span, never the whole video; frame `i` is the i-th decoded frame of the mp4 (1-based
`st_frame` minus one). A box with no area inside the frame is left out before the spread (its
count kept in `meta`). The user asks for a detailed description of `<obj0>`; the caption answers.
One unit per annotation file (the v2 train file, the largest, holds ~10k videos).

    pixelrefer ingest --source hcstvg --root /data/hc-stvg --out out/
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from schemas import Media, Reject, Region, RegionFrame, Sample, masks
from schemas.placeholders import obj
from sources import fixtures, jsonarray
from sources.base import Adapter, Unit
from sources.common import find_media, is_int, is_number, normalize_text, release_files, video_info
from sources.roots import Roots
from sources.templates import DETAILED_DESCRIPTION, pick

# release file name -> (subset, split); each is looked for at the root, then in its subfolders.
FILES = {
    "train.json": ("v1_train", "train"),
    "test.json": ("v1_test", "test"),
    "train_v2.json": ("v2_train", "train"),
    "val_v2.json": ("v2_val", "val"),
}
VIDEOS = "video"


@functools.lru_cache(maxsize=16)
def _subfolders(folder: Path) -> tuple[str, ...]:
    """The part folders of a video folder (v2 splits its videos into parts), listed once per process."""
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_dir())) if folder.is_dir() else ()


def spread(count: int, at_most: int) -> list[int]:
    """`min(count, at_most)` distinct indices of `range(count)`, evenly spread, first and last included."""
    return sorted({int(i) for i in np.linspace(0, count - 1, min(count, at_most)).round()})


class HcstvgAdapter(Adapter):
    name = "hcstvg"
    version = "1"
    license = "HC-STVG annotations: no licence stated by the authors; videos are movie clips under their owners' terms"
    LAYOUT = """\
train.json  test.json          HC-STVG v1 annotations (here or in a subfolder, e.g. anno_v1/)
train_v2.json  val_v2.json     HC-STVG v2 annotations (here or in a subfolder, e.g. anno_v2/)
video/<name>.mp4               the videos, flat (v1) or in part folders video/<part>/<name>.mp4 (v2),
                               here or in a declared media root
"""
    max_frames = 16  # frames of the span kept per sample: enough to follow the person, never all

    def units(self, roots: Roots) -> list[Unit]:
        files = release_files(roots.annotations, list(FILES))
        if not files:
            raise FileNotFoundError(f"{roots.annotations}: none of {', '.join(FILES)} found (expected layout:\n{self.LAYOUT})")
        return [Unit(self.name, FILES[Path(f).name][0], {"file": f}) for f in files]

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        file = unit.spec["file"]
        repeated: Counter = Counter()
        data = jsonarray.load_json(roots.annotations / file, repeated)  # a bad file: one line naming it and the byte
        if not isinstance(data, dict):
            raise ValueError(f"{file}: not an HC-STVG annotation file (expected a JSON object of video name -> record)")
        for video, fields in data.items():
            locator = f"{file}[{video}]"
            if repeated[video]:  # listed more than once: which record is right is unknown, so none is used
                for _ in range(repeated[video] + 1):
                    yield locator, Reject("duplicate_key", f"video {video!r} is listed {repeated[video] + 1} times", locator)
                continue
            yield locator, (file, video, fields)

    def outcomes(self, roots: Roots, record: tuple[str, str, Any], locator: str) -> Sample:
        file, video, fields = record
        version, width, height, caption = _read(fields, locator)
        first, span = fields["st_frame"] - 1, fields["bbox"]  # st_frame counts from 1
        _check_span(first, len(span), fields["img_num"], locator)
        boxes = [(first + k, _box(b, width, height, f"{locator} bbox {k}")) for k, b in enumerate(span)]
        kept = [(frame, box) for frame, box in boxes if box is not None]
        if not kept:
            raise Reject("degenerate_box", f"none of the {len(span)} boxes has area inside the {width}x{height} frame", locator)
        parts = [(VIDEOS, f"{part}/{video}") for root in roots.declared for part in _subfolders(root / VIDEOS)]
        relative = find_media(roots, [(VIDEOS, video), *parts], locator)
        real_w, real_h, count, fps = video_info(roots, relative, locator)
        if (real_w, real_h) != (width, height):
            raise Reject("video_size_mismatch", f"{relative} is {real_w}x{real_h} but its record says {width}x{height}", locator)
        frames = count or fields["img_num"]  # the container's count when it has one: frames index decoded frames
        _check_span(first, len(span), frames, locator)
        chosen = [kept[i] for i in spread(len(kept), self.max_frames)]
        subset, split = FILES[Path(file).name]
        return self.sample(
            subset=subset, native_id=Path(video).stem, file=file, locator=locator, split=split, task="video_caption",
            media=Media(kind="video", path=relative, num_frames=frames, fps=fps, width=width, height=height),
            regions=[Region(label="person", prompt="box", frames=[RegionFrame(frame=f, box=b) for f, b in chosen])],
            conversation=[
                {"role": "user", "text": pick(DETAILED_DESCRIPTION, f"{subset}/{video}").format(obj=obj(0))},
                {"role": "assistant", "text": caption},
            ],
            meta={"version": version, "st_frame": fields["st_frame"], "st_time": fields["st_time"],
                  "ed_time": fields["ed_time"], "img_num": fields["img_num"], "span_frames": len(span),
                  "degenerate_boxes": len(span) - len(kept)},
        )

    def write_fixture(self, root: Path) -> None:
        write_fixture(root)


_FIELDS = {"v1": ("img_num", "width", "height", "st_frame", "st_time", "ed_time", "bbox", "caption"),
           "v2": ("img_num", "img_size", "st_frame", "st_time", "ed_time", "bbox", "English")}


def _read(fields: Any, locator: str) -> tuple[str, int, int, str]:
    """(version, width, height, caption) of a record of either version, its common fields checked."""
    if not isinstance(fields, dict):
        raise Reject("bad_record", f"expected an object, got {type(fields).__name__}", locator)
    if "img_size" in fields or "English" in fields:
        version, size, caption = "v2", fields.get("img_size"), fields.get("English")
        height, width = size if isinstance(size, list) and len(size) == 2 else (None, None)
    else:
        version, caption, width, height = "v1", fields.get("caption"), fields.get("width"), fields.get("height")
    missing = [k for k in _FIELDS[version] if k not in fields]
    if missing or not (is_int(width) and is_int(height) and is_int(fields["st_frame"]) and is_int(fields["img_num"])
                     and isinstance(fields["bbox"], list) and fields["bbox"] and isinstance(caption, str)):
        raise Reject("bad_record", f"a {version} record needs {', '.join(_FIELDS[version])} with int sizes and frames "
                     f"and a non-empty list bbox" + (f"; missing {missing}" if missing else ""), locator)
    caption = normalize_text(caption)
    if not caption:
        raise Reject("empty_caption", "the caption is empty", locator)
    return version, width, height, caption


def _check_span(first: int, length: int, frames: int, locator: str) -> None:
    if first < 0 or first + length > frames:
        raise Reject("span_out_of_range", f"tube frames {first + 1}..{first + length} (1-based) are not all "
                     f"among the video's {frames} frames", locator)


def _box(xywh: Any, width: int, height: int, locator: str) -> list[float] | None:
    """An `[x, y, w, h]` box as `[x0, y0, x1, y1]` clipped to the frame; None if no area is left."""
    if not (isinstance(xywh, list) and len(xywh) == 4 and all(is_number(v) for v in xywh)):
        raise Reject("bad_box", f"box {str(xywh)[:80]} is not [x, y, w, h]", locator)
    return masks.clip_box(masks.xywh_to_xyxy(xywh), width, height)


# ---- fixture: a 20-frame 48x32 v2 clip in a part folder, a 6-frame 40x24 v1 clip ----

V2_SIZE, V1_SIZE = (48, 32), (40, 24)


def person(frame: int) -> fixtures.Rect:
    """Where the person is on `frame` of both fixture clips."""
    return (2 + frame, 4, 12 + frame, 20)


def _xywh(frame: int) -> list[int]:
    x0, y0, x1, y1 = person(frame)
    return [x0, y0, x1 - x0, y1 - y0]


def _clip(size: tuple[int, int], count: int) -> list[np.ndarray]:
    return [fixtures.draw(*size, [person(i)], seed=i) for i in range(count)]


def _v2(st_frame: int, boxes: list, english: str, img_num: int = 20, size: tuple[int, int] = V2_SIZE) -> dict:
    return {"img_num": img_num, "img_size": [size[1], size[0]], "st_frame": st_frame, "st_time": round((st_frame - 1) / 5, 2),
            "ed_time": round((st_frame - 1 + len(boxes)) / 5, 2), "bbox": boxes, "English": english}


def write_fixture(root: Path) -> None:
    """v2 (train_v2.json under anno_v2/) with its traps, and v1 (train.json under anno_v1/)."""
    fixtures.write_video(root / VIDEOS / "part_1" / "50_clip_b.mp4", _clip(V2_SIZE, 20), fps=5)
    fixtures.write_video(root / VIDEOS / "10_clip_a.mp4", _clip(V1_SIZE, 6), fps=5)
    tube = [_xywh(i) for i in range(1, 19)]
    fixtures.write_json(root / "anno_v2" / "train_v2.json", {
        # the good one: an 18-frame tube (frames 2..19), spread over 16 frames
        "50_clip_b.mp4": _v2(2, tube, "The man  in the red shirt walks to the right.\n"),
        "51_missing.mp4": _v2(1, tube[:2], "A man stands."),
        "10_clip_a.mp4": _v2(1, tube[:2], "A man stands."),  # trap: says 48x32, the clip is 40x24
        "52_late.mp4": {**_v2(18, tube[:5], "A man runs."), "img_num": 20},  # trap: frames 18..22 of 20
        "../53_escape.mp4": _v2(1, tube[:2], "A man sits."),
        "54_silent.mp4": _v2(1, tube[:2], "   "),
        "50_clip_b_flat.mp4": _v2(1, [[5, 5, 0, 9], [60, 5, 4, 4]], "A man hides."),
        "50_clip_b_bad.mp4": _v2(1, [[5, 5, 9]], "A man waves."),
        "55_no_start.mp4": {k: v for k, v in _v2(1, tube[:2], "A man waits.").items() if k != "st_frame"},
    })
    v1_tube = [_xywh(i) for i in range(1, 5)]
    v1_tube[1] = [41, 3, 5, 5]  # outside the 40-px-wide frame: left out, counted
    fixtures.write_json(root / "anno_v1" / "train.json", {
        "10_clip_a.mp4": {"img_num": 6, "width": V1_SIZE[0], "height": V1_SIZE[1], "st_frame": 2, "st_time": 0.2,
                          "ed_time": 1.0, "bbox": v1_tube, "caption": "The woman turns and leaves the room."},
    })
