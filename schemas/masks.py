"""Mask and box codec: every native mask encoding in, compressed COCO RLE out.

Inputs (what the eight sources ship):
  * polygon list `[[x1, y1, x2, y2, ...], ...]` (several rings = one object, merged);
  * uncompressed RLE `{"size": [h, w], "counts": [int, ...]}` (COCO iscrowd);
  * compressed RLE `{"size": [h, w], "counts": "<ascii>"}` (str or bytes).
Output: `{"size": [h, w], "counts": str}`, the only mask form a `Sample` holds.

pycocotools reads a ring of exactly 4 numbers as a box, so rings with fewer than 6 coordinates
or an odd count are dropped before it sees them (DESIGN.md section 3).

Everything else that pycocotools would misread, crash on or spend minutes on is a `MaskError`:
non-numeric, null or non-finite coordinates; a polygon point more than `POLYGON_REACH` frame
sizes outside the frame (its cost grows with the coordinates: 3e7 takes 30 s and 3.5 GB, 1e12
segfaults); an RLE whose size or counts are malformed; a mask of more than `MAX_SIDE` pixels a
side or `MAX_PIXELS` in all. Points nearer the frame go to pycocotools unchanged, so masks match
it exactly (clipping coordinates would bend edges that leave the frame).

Boxes are `[x0, y0, x1, y1]` in absolute pixel-edge coordinates: pixel (row r, col c) covers
`[c, c+1) x [r, r+1)`, so the tight box of a mask holding only pixel (0, 0) is `[0, 0, 1, 1]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from pycocotools import mask as cocomask

RLEDict = dict[str, Any]

MAX_SIDE = 65535  # pixels per side: more than any frame of the sources, and pycocotools-safe
MAX_PIXELS = 2**31  # a decoded mask of this size is already 2 GB
POLYGON_REACH = 4  # frame sizes a polygon point may lie outside the frame


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


def _ring_list(polygons: Sequence[Any]) -> list[Any]:
    """The rings of a polygon value; a bare flat ring (no nested list) is unambiguous: one ring."""
    if polygons and not any(isinstance(v, (list, tuple)) for v in polygons):
        return [polygons]
    return list(polygons)


def _is_ring(ring: Any) -> bool:
    return isinstance(ring, (list, tuple)) and len(ring) >= 6 and len(ring) % 2 == 0


def valid_rings(polygons: Sequence[Any]) -> list[list[Any]]:
    """Rings that pycocotools rasterises as polygons: >= 6 coordinates, even count.

    Values are not checked here (this never raises); `to_rle` rejects bad ones.
    """
    return [list(ring) for ring in _ring_list(polygons) if _is_ring(ring)]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_size(height: Any, width: Any) -> None:
    """Raise MaskError unless (height, width) are integers in 1..MAX_SIDE with at most MAX_PIXELS."""
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise MaskError(f"mask {name} {_show(value)} is not an integer")
        if not 0 < value <= MAX_SIDE:
            raise MaskError(f"mask {name} {value} is outside 1..{MAX_SIDE}")
    if height * width > MAX_PIXELS:
        raise MaskError(f"mask size {height} x {width} exceeds {MAX_PIXELS} pixels")


def _ring_coordinates(ring: Sequence[Any], index: int, height: int, width: int) -> list[float]:
    """A ring's coordinates as floats, or MaskError for a value pycocotools must not see."""
    for j, value in enumerate(ring):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise MaskError(f"polygon ring {index} coordinate {j} is {_show(value)}, not a number")
    try:
        xy = np.array(ring, dtype=np.float64).reshape(-1, 2)
    except OverflowError:
        raise MaskError(f"polygon ring {index} holds a coordinate beyond the float range") from None
    bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
    if bad.size:
        raise MaskError(f"polygon ring {index} point {bad[0]} is {xy[bad[0]].tolist()}, not finite")
    reach = np.array([width, height]) * POLYGON_REACH
    far = np.flatnonzero(((xy < -reach) | (xy > reach + [width, height])).any(axis=1))
    if far.size:
        raise MaskError(f"polygon ring {index} point {far[0]} {xy[far[0]].tolist()} lies more than "
                        f"{POLYGON_REACH} frame sizes outside the {width}x{height} frame")
    return xy.ravel().tolist()


def _polygon_rle(polygons: Sequence[Any], height: int, width: int) -> RLEDict:
    rings = _ring_list(polygons)
    for i, ring in enumerate(rings):
        if not isinstance(ring, (list, tuple)):
            raise MaskError(f"polygon ring {i} is {_show(ring)}, not a list of coordinates")
    coordinates = [_ring_coordinates(ring, i, height, width) for i, ring in enumerate(rings) if _is_ring(ring)]
    if not coordinates:
        return empty(height, width)
    return _out(cocomask.merge(cocomask.frPyObjects(coordinates, height, width)))


def _rle_size(size: Any) -> list[int]:
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise MaskError(f"RLE size must be [height, width], got {_show(size)}")
    check_size(*size)
    return [int(size[0]), int(size[1])]


def _uncompressed_rle(counts: list[Any], height: int, width: int) -> RLEDict:
    for j, run in enumerate(counts):
        if isinstance(run, bool) or not isinstance(run, Integral) or run < 0:
            raise MaskError(f"uncompressed RLE counts[{j}] is {_show(run)}, not a non-negative integer")
    if sum(counts) != height * width:
        raise MaskError(f"uncompressed RLE counts sum to {sum(counts)}, expected {height * width}")
    return _out(cocomask.frPyObjects({"size": [height, width], "counts": [int(c) for c in counts]}, height, width))


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
        MaskError: a malformed size, polygon or RLE (see the module docstring), an RLE whose size
            differs from (height, width) or whose counts do not cover h*w pixels, or a value that
            is neither a polygon list nor an RLE dict.
    """
    check_size(height, width)
    if isinstance(segmentation, (list, tuple)):
        return _polygon_rle(segmentation, height, width)
    if not isinstance(segmentation, dict) or "counts" not in segmentation or "size" not in segmentation:
        raise MaskError(f"not a polygon list or RLE dict: {str(segmentation)[:80]}")
    size = _rle_size(segmentation["size"])
    if size != [height, width]:
        raise MaskError(f"RLE size {size} differs from the image size {[height, width]}")
    counts = segmentation["counts"]
    if isinstance(counts, list):
        return _uncompressed_rle(counts, height, width)
    if isinstance(counts, (str, bytes)):
        # latin-1 keeps every byte, so run_lengths names a non-ASCII one instead of a decode error
        rle = {"size": size, "counts": counts.decode("latin-1") if isinstance(counts, bytes) else counts}
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
    """Raise MaskError unless the size is sane and the compressed counts decode to runs covering
    exactly h*w pixels.

    pycocotools does not check this: it silently reads garbage counts.
    """
    h, w = _rle_size(rle["size"])
    runs = run_lengths(rle["counts"])
    total = int(runs.sum())
    if (runs < 0).any() or total != h * w:
        raise MaskError(f"compressed RLE runs cover {total} pixels, expected {h} x {w} = {h * w}")


def decode(rle: RLEDict) -> np.ndarray:
    """Compressed RLE -> bool array of shape (h, w)."""
    return cocomask.decode(_coco(rle)).astype(bool)


def decode_window(rle: RLEDict, rows: slice, cols: slice) -> np.ndarray:
    """`decode(rle)[rows, cols]` (slices with start and stop inside the mask), from the runs of
    those columns only.

    Runs go down the columns (column-major), so the window's columns are one stretch of runs: a
    crop around a small object costs a fraction of decoding the whole frame's mask.
    """
    top, height, left, width = rows.start, rows.stop - rows.start, cols.start, cols.stop - cols.start
    h, _ = _rle_size(rle["size"])
    runs = run_lengths(rle["counts"])
    ends = np.cumsum(runs)
    start, stop = left * h, (left + width) * h
    first, last = np.searchsorted(ends, start, side="right"), np.searchsorted(ends, stop, side="left")
    lengths = np.minimum(ends[first : last + 1], stop) - np.maximum(ends[first : last + 1] - runs[first : last + 1], start)
    values = np.arange(first, last + 1) % 2 == 1  # runs alternate background, foreground, from background
    return np.repeat(values, lengths).reshape(width, h)[:, top : top + height].T


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
