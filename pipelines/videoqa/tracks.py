"""Mask-derived track facts of a video sample: pure numpy, no model, no LLM.

Per object: presence intervals, centroid trajectory, direction and speed, size change, entering
or leaving the view. Per pair: relative position over time and whether they approach. The facts
ground the Annotator/Refiner prompts (`TrackFacts.describe()`) and are all the offline
`heuristic` backend knows.

Example:
    >>> facts = track_facts(sample)
    >>> facts.objects[0].direction, facts.objects[0].size_change
    ('right', 'grows')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from schemas import Sample, masks

STILL_FRACTION = 0.05  # displacement below 5% of the frame diagonal counts as "does not move"
GROW, SHRINK = 1.25, 0.8  # last/first area ratios that count as growing / shrinking
COMPASS = ("right", "down-right", "down", "down-left", "left", "up-left", "up", "up-right")


@dataclass(frozen=True)
class ObjectTrack:
    """What the masks (or boxes) of one region say about it over time."""

    index: int
    label: str | None
    frames: tuple[int, ...]  # frames where it is visible
    intervals: tuple[tuple[int, int], ...]  # inclusive (first, last) runs of consecutive visible frames
    centroids: tuple[tuple[float, float], ...]  # (x, y) per visible frame
    areas: tuple[float, ...]  # pixels per visible frame
    direction: str  # a COMPASS word, "still", or "unknown" (seen on one frame only)
    speed: float  # pixels per second (per frame when the video has no timing)
    size_change: str  # grows | shrinks | same
    enters: bool  # a dense track that starts after the first frame
    leaves: bool  # a dense track that ends before the last frame


@dataclass(frozen=True)
class PairTrack:
    """Where object `b` is relative to object `a` on the frames both are visible."""

    a: int
    b: int
    frames: tuple[int, ...]
    relations: tuple[str, ...]  # per shared frame: left of | right of | above | below
    distance: str  # approaching | separating | steady


@dataclass(frozen=True)
class TrackFacts:
    width: int
    height: int
    objects: tuple[ObjectTrack, ...]
    pairs: tuple[PairTrack, ...]

    def describe(self) -> str:
        """The facts as plain sentences with `<obj{i}>` placeholders (prompt grounding)."""
        lines = []
        for o in self.objects:
            if not o.frames:
                lines.append(f"<obj{o.index}> is never visible.")
                continue
            spans = ", ".join(f"{a}-{b}" for a, b in o.intervals)
            lines.append(
                f"<obj{o.index}> is visible on frames {spans}; it starts at the {place(o.centroids[0], self)} "
                f"and ends at the {place(o.centroids[-1], self)}; motion: {o.direction} at {o.speed:.1f} px/s; "
                f"size: {o.size_change}; enters: {'yes' if o.enters else 'no'}; leaves: {'yes' if o.leaves else 'no'}."
            )
        for p in self.pairs:
            if p.frames:
                lines.append(
                    f"<obj{p.b}> is {p.relations[0]} <obj{p.a}> at first and {p.relations[-1]} it at the end; "
                    f"their distance is {p.distance}."
                )
        return "\n".join(lines)


def place(xy: tuple[float, float], facts: TrackFacts) -> str:
    """Where a point is in the frame, in thirds: 'top left', 'center', 'bottom right', ..."""
    col = ("left", "center", "right")[min(2, int(3 * xy[0] / facts.width))]
    row = ("top", "middle", "bottom")[min(2, int(3 * xy[1] / facts.height))]
    if row == "middle":
        return col
    return row if col == "center" else f"{row} {col}"


def _frame_geometry(rf, height: int, width: int) -> tuple[float, float, float] | None:
    """(cx, cy, area) of a region frame from its mask, else its box, else its point; None when empty."""
    if rf.mask is not None:
        m = masks.decode(rf.mask.model_dump())
        if not m.any():
            return None
        ys, xs = np.nonzero(m)
        return float(xs.mean()) + 0.5, float(ys.mean()) + 0.5, float(m.sum())
    if rf.box is not None:
        x0, y0, x1, y1 = rf.box
        return (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * (y1 - y0)
    if rf.point is not None:
        return float(rf.point[0]), float(rf.point[1]), 0.0
    return None


def _intervals(frames: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Runs of consecutive visible frame indices, as inclusive (first, last) pairs."""
    runs: list[list[int]] = []
    for f in frames:
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    return tuple((a, b) for a, b in runs)


def _seconds(sample: Sample, first: int, last: int) -> float:
    """Time between two frames: timestamps, else fps, else frame count (speed is then per frame)."""
    media = sample.media
    if media.timestamps:
        return media.timestamps[last] - media.timestamps[first]
    return (last - first) / (media.fps or 1.0)


def _direction(dx: float, dy: float, width: int, height: int) -> str:
    if math.hypot(dx, dy) < STILL_FRACTION * math.hypot(width, height):
        return "still"
    angle = math.degrees(math.atan2(dy, dx)) % 360  # image y grows downward
    return COMPASS[int(((angle + 22.5) % 360) // 45)]


def _object(sample: Sample, index: int) -> ObjectTrack:
    region = sample.regions[index]
    h, w = sample.media.height, sample.media.width
    geo = {rf.frame: g for rf in region.frames if (g := _frame_geometry(rf, h, w)) is not None}
    frames = tuple(sorted(geo))
    # Enter/leave only from dense tracks (a mask on every frame between first and last sight):
    # sparse keyframe annotations say nothing about the frames in between or outside.
    dense = len(frames) >= 2 and frames == tuple(range(frames[0], frames[-1] + 1))
    last_frame = (sample.media.frame_count or 1) - 1
    centroids = tuple((geo[f][0], geo[f][1]) for f in frames)
    areas = tuple(geo[f][2] for f in frames)
    direction, speed, size = "unknown", 0.0, "same"
    if len(frames) >= 2:
        dx, dy = centroids[-1][0] - centroids[0][0], centroids[-1][1] - centroids[0][1]
        direction = _direction(dx, dy, w, h)
        span = _seconds(sample, frames[0], frames[-1])
        speed = math.hypot(dx, dy) / span if span > 0 else 0.0
        if areas[0] > 0:
            ratio = areas[-1] / areas[0]
            size = "grows" if ratio >= GROW else "shrinks" if ratio <= SHRINK else "same"
    return ObjectTrack(
        index=index,
        label=region.label,
        frames=frames,
        intervals=_intervals(frames),
        centroids=centroids,
        areas=areas,
        direction=direction,
        speed=speed,
        size_change=size,
        enters=dense and frames[0] > 0,
        leaves=dense and frames[-1] < last_frame,
    )


def _relation(a: tuple[float, float], b: tuple[float, float]) -> str:
    """Where b is relative to a, by the dominant axis of their centroid offset."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    if abs(dx) >= abs(dy):
        return "right of" if dx > 0 else "left of"
    return "below" if dy > 0 else "above"


def _pair(a: ObjectTrack, b: ObjectTrack, width: int, height: int) -> PairTrack:
    ca, cb = dict(zip(a.frames, a.centroids)), dict(zip(b.frames, b.centroids))
    shared = tuple(f for f in a.frames if f in cb)
    relations = tuple(_relation(ca[f], cb[f]) for f in shared)
    distance = "steady"
    if len(shared) >= 2:
        d0 = math.dist(ca[shared[0]], cb[shared[0]])
        d1 = math.dist(ca[shared[-1]], cb[shared[-1]])
        if abs(d1 - d0) >= STILL_FRACTION * math.hypot(width, height):
            distance = "approaching" if d1 < d0 else "separating"
    return PairTrack(a=a.index, b=b.index, frames=shared, relations=relations, distance=distance)


def track_facts(sample: Sample) -> TrackFacts:
    """All object and pair facts of a sample (every region, every ordered pair a < b)."""
    w, h = sample.media.width, sample.media.height
    objects = tuple(_object(sample, i) for i in range(len(sample.regions)))
    pairs = tuple(_pair(a, b, w, h) for i, a in enumerate(objects) for b in objects[i + 1 :])
    return TrackFacts(width=w, height=h, objects=objects, pairs=pairs)
