"""Helpers shared by the adapters: image checks, text normalisation, native turn conversion, masks.

Everything here turns bad input into a `Reject` with a named reason, never a silent skip.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import av
from PIL import Image, UnidentifiedImageError

from schemas import Reject, Turn, masks
from schemas.placeholders import obj
from sources import jsonarray
from sources.imagedecode import MAX_PIXELS
from sources.roots import Roots

FRAME_FOLDER_FPS = 3.0  # what PixelRefer's loader assumes for any frame folder (pixelrefer_official.md 2a)
_MEDIA_TAG = re.compile(r"<image>|<video>", re.IGNORECASE)
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def normalize_text(text: str) -> str:
    """NFC unicode, whitespace runs collapsed to one space (newlines kept), ends stripped."""
    text = unicodedata.normalize("NFC", text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip()


def image_size(roots: Roots, relative: str, locator: str, under: str = "") -> tuple[int, int]:
    """(width, height) of an image a dataset names (looked up in the declared roots, below
    `under`), reading only its header.

    Rejects: path_escapes_root, bad_path, image_missing, image_empty (zero bytes), and those of
    `header_size`.
    """
    path = roots.media_path(relative, locator, under)
    if not path.is_file():
        raise Reject("image_missing", f"no image file at {relative}", locator)
    if path.stat().st_size == 0:
        raise Reject("image_empty", f"{relative} has zero bytes", locator)
    return header_size(path, relative, locator)


def header_size(image: Path | BinaryIO, name: str, locator: str) -> tuple[int, int]:
    """(width, height) from an image file's header. Rejects: image_unreadable, and image_too_large
    for a header declaring more pixels than `imagedecode.MAX_PIXELS` (a decompression bomb: a
    110 KB PNG can declare 30000x30000), so no later stage ever tries to decode it."""
    try:
        with Image.open(image) as im:
            width, height = im.size
    except Image.DecompressionBombError as err:
        raise Reject("image_too_large", f"{name}: {err}", locator) from None
    except (UnidentifiedImageError, OSError) as err:
        raise Reject("image_unreadable", f"{name}: {err}", locator) from None
    if width * height > MAX_PIXELS:
        raise Reject("image_too_large", f"{name} is {width}x{height}, more than {MAX_PIXELS} pixels", locator)
    return width, height


def native_turns(
    conversations: Sequence[dict], convert: Callable[[str], str], locator: str
) -> list[Turn]:
    """`[{"from": "human"|"gpt"|"system", "value": str}]` -> canonical turns.

    `<image>`/`<video>` tags are dropped wherever they stand; `convert` maps the source's
    region dialect to `<obj{i}>` (raising Reject for what it cannot map).
    """
    turns = []
    for i, turn in enumerate(conversations):
        role = _ROLES.get(str(turn.get("from", "")).lower())
        if role is None or not isinstance(turn.get("value"), str):
            raise Reject("bad_turn", f"turn {i} has from={turn.get('from')!r} / no string value", locator)
        turns.append(Turn(role=role, text=normalize_text(convert(_MEDIA_TAG.sub("", turn["value"])))))
    return turns


def segmentation_rle(segmentation: Any, height: int, width: int, locator: str) -> masks.RLEDict:
    """Any COCO segmentation (polygons, RLE, uncompressed RLE) -> compressed RLE of (height, width).

    Rejects: invalid_polygon (no ring of >= 6 coordinates), mask_size_mismatch, bad_mask.
    """
    if isinstance(segmentation, list) and not masks.valid_rings(segmentation):
        raise Reject("invalid_polygon", "no polygon ring with >= 6 coordinates (pycocotools would read 4 as a box)", locator)
    if isinstance(segmentation, dict) and segmentation.get("size") != [height, width]:
        # a malformed size (wrong type, negative, ...) is left to to_rle, which names it as bad_mask
        if isinstance(segmentation.get("size"), list) and len(segmentation["size"]) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in segmentation["size"]):
            raise Reject("mask_size_mismatch", f"RLE size {segmentation.get('size')} vs image {[height, width]}", locator)
    try:
        return masks.to_rle(segmentation, height, width)
    except masks.MaskError as err:
        raise Reject("bad_mask", str(err), locator) from None


def mask_region(frames: Iterable[tuple[int, Any]], height: int, width: int, where: str) -> dict:
    """A mask region from `(frame, native mask)` pairs sorted by frame.

    A null, `[]` or all-zero mask means "absent on that frame" and is left out; an object
    absent everywhere is an `object_without_masks` reject.
    """
    kept = []
    for frame, segmentation in frames:
        if segmentation is None or segmentation == []:
            continue
        rle = segmentation_rle(segmentation, height, width, f"{where} frame {frame}")
        if masks.area(rle):
            kept.append(dict(frame=frame, mask=rle, box=masks.bbox(rle)))
    if not kept:
        raise Reject("object_without_masks", "the object has no mask on any frame", where)
    return dict(prompt="mask", mask_origin="annotation", frames=kept)


def is_int(value: object) -> bool:
    """An int that is not a bool: JSON `true` is a Python bool, and `True == 1` finds id 1 in a dict."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite int or float, never a bool: Python's json also reads `NaN` and `Infinity`, which
    are no coordinates (`abs(x) < inf` is false for both)."""
    return is_int(value) or isinstance(value, float) and abs(value) < float("inf")


def find_media(roots: Roots, candidates: Iterable[tuple[str, str]], locator: str) -> str:
    """`under/name` of the first `(under, name)` candidate that a declared root holds as a file,
    else of the first candidate (for `image_size` to report missing). Each candidate tried goes
    through `roots.media_path`, so a name that leaves the roots is a reject, not a miss."""
    tried = list(candidates)
    under, name = next(((u, n) for u, n in tried if roots.media_path(n, locator, u).is_file()), tried[0])
    return f"{under}/{name}" if under else name


def line_spans(path: Path, target_bytes: int) -> list[dict]:
    """Consecutive lines of a JSONL file grouped into byte spans of about `target_bytes`, in one
    pass: `{"start", "end", "first", "count"}` (byte range, index of the first line, line count),
    the JSONL counterpart of `sources.jsonarray.spans`."""
    if path.stat().st_size == 0:  # as for JSON: a file with no record at all is a broken download
        raise jsonarray.JsonFileError(f"{path}: empty file at byte 0 (expected JSON lines)")
    out, span, pos = [], {"start": 0, "first": 0, "count": 0}, 0
    with open(path, "rb") as f:
        for index, line in enumerate(f):
            pos += len(line)
            span["count"] += 1
            if pos - span["start"] >= target_bytes:
                out.append({**span, "end": pos})
                span = {"start": pos, "first": index + 1, "count": 0}
    if span["count"]:
        out.append({**span, "end": pos})
    return out


def read_lines(path: Path, span: dict, file: str) -> Iterator[tuple[int, Any]]:
    """`(index, record)` of each line of one `line_spans` span; a line that is not JSON comes as a
    `bad_json` Reject located at `file[index]`, a blank line is no record."""
    with open(path, "rb") as f:
        f.seek(span["start"])
        for index in range(span["first"], span["first"] + span["count"]):
            line = f.readline()
            if line.strip():
                try:
                    yield index, json.loads(line)
                except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError, > 4300 digits, too deep
                    yield index, Reject("bad_json", f"line {index + 1}: {type(err).__name__}: {str(err)[:200]}", f"{file}[{index}]")


@functools.lru_cache(maxsize=1024)
def _probe(path: str) -> tuple[int, int, int | None, float | None]:
    with av.open(path) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate) if stream.average_rate else None
        return stream.codec_context.width, stream.codec_context.height, stream.frames or None, rate


def video_info(roots: Roots, relative: str, locator: str, under: str = "") -> tuple[int, int, int | None, float | None]:
    """(width, height, frame count or None, fps or None) of a video file a dataset names, from its
    header (PyAV; the count is the container's, None when it does not say).

    Rejects: path_escapes_root, video_missing, video_unreadable (no video stream, not a video).
    """
    path = roots.media_path(relative, locator, under)
    if not path.is_file():
        raise Reject("video_missing", f"no video file at {relative}", locator)
    try:
        return _probe(str(path))
    except (av.FFmpegError, IndexError) as err:
        raise Reject("video_unreadable", f"{relative}: {err}", locator) from None


def recognition_turns(system_prompt: str, question: str, labels: Sequence[str]) -> list[Turn]:
    """The Osprey-style recognition conversation: the system prompt, then per region `i` the
    `question` (with `{region}` -> `<obj{i}>`) answered by its label."""
    turns = [Turn(role="system", text=system_prompt)]
    for i, label in enumerate(labels):
        turns += [Turn(role="user", text=question.format(region=obj(i))), Turn(role="assistant", text=label)]
    return turns


def release_files(root: Path, names: Sequence[str]) -> list[str]:
    """Each of `names` found at `root` or in one of its direct subfolders (sorted; the first hit
    wins), relative to `root`, in `names` order: releases unpack with or without a top folder."""
    folders = [""] + sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    found = (next((f"{d}/{n}".lstrip("/") for d in folders if (root / d / n).is_file()), None) for n in names)
    return [f for f in found if f]
