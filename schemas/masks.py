"""Mask and box codec: every native mask encoding in, compressed COCO RLE out.

Inputs (what the eight sources ship):
  * polygon list `[[x1, y1, x2, y2, ...], ...]` (several rings = one object, merged);
  * uncompressed RLE `{"size": [h, w], "counts": [int, ...]}` (COCO iscrowd);
  * compressed RLE `{"size": [h, w], "counts": "<ascii>"}` (str or bytes).
Output: `{"size": [h, w], "counts": str}`, the only mask form a `Sample` holds.

pycocotools reads a ring of exactly 4 numbers as a box, so rings with fewer than 6 coordinates
or an odd count are dropped before it sees them (DESIGN.md section 3).

Boxes are `[x0, y0, x1, y1]` in absolute pixel-edge coordinates: pixel (row r, col c) covers
`[c, c+1) x [r, r+1)`, so the tight box of a mask holding only pixel (0, 0) is `[0, 0, 1, 1]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as cocomask

RLEDict = dict[str, Any]


class MaskError(ValueError):
    """A mask annotation that cannot be decoded as given (the message says why)."""


def _out(rle: dict) -> RLEDict:
    counts = rle["counts"]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def _coco(rle: RLEDict) -> dict:
    """pycocotools wants bytes counts."""
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def valid_rings(polygons: Sequence[Any]) -> list[list[float]]:
    """Rings that pycocotools rasterises as polygons: >= 6 coordinates, even count, all finite."""
    if polygons and all(isinstance(v, (int, float)) for v in polygons):
        polygons = [polygons]  # a bare flat ring: unambiguous, treat as one ring
    rings = []
    for ring in polygons:
        if not isinstance(ring, (list, tuple)) or len(ring) < 6 or len(ring) % 2:
            continue
        values = [float(v) for v in ring]
        if all(np.isfinite(values)):
            rings.append(values)
    return rings


def encode(mask: np.ndarray) -> RLEDict:
    """Binary (h, w) array -> compressed RLE."""
    if mask.ndim != 2:
        raise MaskError(f"mask must be 2-D, got shape {mask.shape}")
    return _out(cocomask.encode(np.asfortranarray(mask.astype(np.uint8))))


def empty(height: int, width: int) -> RLEDict:
    return encode(np.zeros((height, width), dtype=np.uint8))


def to_rle(segmentation: Any, height: int, width: int) -> RLEDict:
    """Any native segmentation -> compressed RLE of size (height, width).

    Raises:
        MaskError: an RLE whose size differs from (height, width), counts that do not sum to
            h*w, or a value that is neither a polygon list nor an RLE dict.
    """
    if isinstance(segmentation, (list, tuple)):
        rings = valid_rings(segmentation)
        if not rings:
            return empty(height, width)
        return _out(cocomask.merge(cocomask.frPyObjects(rings, height, width)))
    if not isinstance(segmentation, dict) or "counts" not in segmentation or "size" not in segmentation:
        raise MaskError(f"not a polygon list or RLE dict: {str(segmentation)[:80]}")
    size = [int(v) for v in segmentation["size"]]
    if size != [height, width]:
        raise MaskError(f"RLE size {size} differs from the image size {[height, width]}")
    counts = segmentation["counts"]
    if isinstance(counts, list):
        if sum(counts) != height * width:
            raise MaskError(f"uncompressed RLE counts sum to {sum(counts)}, expected {height * width}")
        return _out(cocomask.frPyObjects({"size": size, "counts": counts}, height, width))
    if isinstance(counts, (str, bytes)):
        rle = _out({"size": size, "counts": counts})
        check_counts(rle)
        return rle
    raise MaskError(f"RLE counts must be a list or a string, got {type(counts).__name__}")


def run_lengths(counts: str) -> np.ndarray:
    """Decode pycocotools' compressed counts string into run lengths (int64), vectorised.

    Format: each run is a little-endian group of 6-bit characters (offset 48), 5 value bits and
    a continuation bit (0x20); bit 0x10 of a group's last character sign-extends it; from the
    fourth run on, the value is a delta to the run two places back.
    """
    try:
        raw = counts.encode("ascii")
    except UnicodeEncodeError as err:
        raise MaskError(f"compressed RLE counts hold a non-ASCII character {counts[err.start]!r}") from None
    chars = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    if chars.size == 0:
        return np.zeros(0, dtype=np.int64)
    if chars.min() < 0 or chars.max() >= 64:
        bad = counts[int(np.argmax((chars < 0) | (chars >= 64)))]
        raise MaskError(f"compressed RLE counts hold an invalid character {bad!r}")
    last = (chars & 0x20) == 0
    if not last[-1]:
        raise MaskError("compressed RLE counts end in the middle of a number")
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 12:  # 60 bits: more than any real mask needs, and int64-safe
        raise MaskError("compressed RLE counts hold a number too large to be a run")
    position = np.arange(chars.size) - np.repeat(starts, lengths)
    values = np.add.reduceat((chars & 0x1F) << (5 * position), starts)
    values -= np.where(chars[ends] & 0x10, np.left_shift(1, 5 * lengths), 0)
    runs = values.copy()
    runs[3::2] = np.cumsum(values[1::2])[1:]  # odd runs: deltas chained from run 1
    runs[4::2] = np.cumsum(values[2::2])[1:]  # even runs from 4: chained from run 2
    return runs


def check_counts(rle: RLEDict) -> None:
    """Raise MaskError unless the compressed counts decode to runs covering exactly h*w pixels.

    pycocotools does not check this: it silently reads garbage counts.
    """
    runs = run_lengths(rle["counts"])
    h, w = rle["size"]
    total = int(runs.sum())
    if (runs < 0).any() or total != h * w:
        raise MaskError(f"compressed RLE runs cover {total} pixels, expected {h} x {w} = {h * w}")


def decode(rle: RLEDict) -> np.ndarray:
    """Compressed RLE -> bool array of shape (h, w)."""
    return cocomask.decode(_coco(rle)).astype(bool)


def area(rle: RLEDict) -> int:
    """Number of foreground pixels (no decode needed)."""
    return int(cocomask.area(_coco(rle)))


def bbox(rle: RLEDict) -> list[float] | None:
    """Tight `[x0, y0, x1, y1]` of the foreground, or None for an empty mask."""
    if area(rle) == 0:
        return None
    x, y, w, h = (float(v) for v in cocomask.toBbox(_coco(rle)))
    return [x, y, x + w, y + h]


def merge(rles: Sequence[RLEDict]) -> RLEDict:
    """Union of same-size masks (e.g. a multi-object MeViS expression)."""
    return _out(cocomask.merge([_coco(r) for r in rles], intersect=False))


def box_to_rle(box: Sequence[float], height: int, width: int) -> RLEDict:
    """Filled box -> RLE: the pixels whose centres lie inside `[x0, x1) x [y0, y1)`.

    For integer boxes this is exactly the inverse of `bbox`.
    """
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), dtype=np.uint8)
    c0, c1 = max(0, int(np.ceil(x0 - 0.5))), min(width, int(np.ceil(x1 - 0.5)))
    r0, r1 = max(0, int(np.ceil(y0 - 0.5))), min(height, int(np.ceil(y1 - 0.5)))
    mask[r0:r1, c0:c1] = 1
    return encode(mask)


def xywh_to_xyxy(box: Sequence[float]) -> list[float]:
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


def clip_box(box: Sequence[float], width: int, height: int) -> list[float] | None:
    """Clip `[x0, y0, x1, y1]` to the frame; None when nothing of positive area is left."""
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
    y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    if x1 <= x0 or y1 <= y0:
        return None
    return [x0, y0, x1, y1]
