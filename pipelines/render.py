"""Draw a sample as a picture: its frames with every region's mask, box and point in the region's
colour, labelled `<obj{i}>`, beside the conversation with placeholders coloured to match.

Used by `pixelrefer inspect` and the dataset report. Only annotated frames of a video are drawn
(up to `max_frames`, evenly chosen), each at its native size scaled to `frame_height`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from schemas import Sample, masks, placeholders
from sources.media import load_frames
from sources.roots import Roots

COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40)]
TEXT_COLOUR = (20, 20, 20)
ROLE_COLOUR = (110, 110, 110)
MASK_ALPHA = 0.45

FrameLoader = Callable[[Sample, int], Image.Image]


def colour(index: int) -> tuple[int, int, int]:
    return COLOURS[index % len(COLOURS)]


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def media_frame_loader(media_root: Roots) -> FrameLoader:
    """Frames from under `media_root`: the image, a frame-folder frame or a decoded video-file frame."""

    def load(sample: Sample, frame: int) -> Image.Image:
        return Image.fromarray(load_frames(sample, media_root, [frame])[frame])

    return load


def annotated_frames(sample: Sample, max_frames: int) -> list[int]:
    """Frames that carry any region, evenly thinned to at most `max_frames`."""
    frames = sorted({rf.frame for region in sample.regions for rf in region.frames}) or [0]
    if len(frames) <= max_frames:
        return frames
    picks = np.linspace(0, len(frames) - 1, max_frames).round().astype(int)
    return [frames[i] for i in picks]


def draw_regions(image: Image.Image, sample: Sample, frame: int, scale: float = 1.0, font_size: int = 14) -> Image.Image:
    """Overlay masks (blended), boxes (outlined) and points (dots) of every region on one frame.

    `image` is the frame already resized by `scale`; region coordinates are scaled to it, so
    labels keep a readable size however small the native frame is.
    """
    pixels = np.asarray(image, dtype=np.float32).copy()
    for i, region in enumerate(sample.regions):
        for rf in region.frames:
            if rf.frame == frame and rf.mask is not None:
                m = masks.decode(rf.mask.model_dump())
                if m.shape != pixels.shape[:2]:
                    m = np.asarray(Image.fromarray(m).resize(image.size, Image.Resampling.NEAREST))
                pixels[m] = pixels[m] * (1 - MASK_ALPHA) + np.array(colour(i)) * MASK_ALPHA
    out = Image.fromarray(pixels.round().astype(np.uint8))
    pen = ImageDraw.Draw(out)
    font = _font(font_size)
    for i, region in enumerate(sample.regions):
        for rf in region.frames:
            if rf.frame != frame:
                continue
            if rf.box is not None:
                pen.rectangle([v * scale for v in rf.box], outline=colour(i), width=2)
            if rf.point is not None:
                x, y = (v * scale for v in rf.point)
                pen.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour(i), outline=(255, 255, 255))
            anchor = _anchor(rf)
            if anchor is not None:
                _tag(pen, (anchor[0] * scale, anchor[1] * scale), placeholders.obj(i), colour(i), font)
    return out


def _anchor(rf) -> tuple[float, float] | None:
    """Where a region's label goes: top-left of its box, its point, or its mask's box."""
    if rf.box is not None:
        return rf.box[0], rf.box[1]
    if rf.point is not None:
        return rf.point[0] + 6, rf.point[1] - 6
    if rf.mask is not None:
        box = masks.bbox(rf.mask.model_dump())
        return (box[0], box[1]) if box else None
    return None


def _tag(pen: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill, font) -> None:
    x, y = xy
    left, top, right, bottom = pen.textbbox((x, y), text, font=font)
    y = max(0.0, y - (bottom - top) - 4)
    box = pen.textbbox((x, y), text, font=font)
    pen.rectangle([box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2], fill=fill)
    pen.text((x, y), text, fill=(255, 255, 255), font=font)


def conversation_panel(sample: Sample, width: int, font_size: int = 15) -> Image.Image:
    """The conversation as wrapped text; each `<objN>` drawn in region N's colour."""
    font = _font(font_size)
    line_h = font_size + 6
    words = _coloured_words(sample)
    lines: list[list[tuple[str, tuple]]] = [[]]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    x = 0.0
    for word, fill in words:
        if word == "\n":
            lines.append([])
            x = 0.0
            continue
        w = measure.textlength(word + " ", font=font)
        if x + w > width - 20 and lines[-1]:
            lines.append([])
            x = 0.0
        lines[-1].append((word, fill))
        x += w
    panel = Image.new("RGB", (width, 16 + line_h * len(lines)), (250, 250, 250))
    pen = ImageDraw.Draw(panel)
    for row, line in enumerate(lines):
        x = 10.0
        for word, fill in line:
            pen.text((x, 8 + row * line_h), word, fill=fill, font=font)
            x += pen.textlength(word + " ", font=font)
    return panel


def _coloured_words(sample: Sample) -> list[tuple[str, tuple]]:
    words: list[tuple[str, tuple]] = []
    for turn in sample.conversation:
        words.append((turn.role.upper() + ":", ROLE_COLOUR))
        for piece in placeholders.split(turn.text):
            if isinstance(piece, int):
                words.append((placeholders.obj(piece), colour(piece)))
                continue
            for n, line in enumerate(piece.split("\n")):
                if n:
                    words.append(("\n", TEXT_COLOUR))
                words.extend((w, TEXT_COLOUR) for w in line.split())
        words.append(("\n", TEXT_COLOUR))
    return words


def render_sample(
    sample: Sample, load_frame: FrameLoader, max_frames: int = 4, frame_height: int = 360, panel_width: int = 460
) -> Image.Image:
    """One PNG-ready picture: a strip of annotated frames with regions drawn, then the conversation
    (the conversation alone for a text-only sample)."""
    tiles = []
    for frame in annotated_frames(sample, max_frames) if sample.media is not None else []:
        image = load_frame(sample, frame)
        scale = frame_height / image.height
        image = image.resize((max(1, round(image.width * scale)), frame_height), Image.Resampling.BILINEAR)
        tiles.append(draw_regions(image, sample, frame, scale))
    panel = conversation_panel(sample, panel_width)
    width = sum(t.width for t in tiles) + 4 * max(len(tiles) - 1, 0) + panel.width  # no tiles: text-only
    canvas = Image.new("RGB", (width, max([panel.height, *(t.height for t in tiles)])), (255, 255, 255))
    x = 0
    for tile in tiles:
        canvas.paste(tile, (x, 0))
        x += tile.width + 4
    canvas.paste(panel, (x, 0))
    return canvas


def save_png(image: Image.Image, path: Path) -> None:
    """PNG without timestamps or other varying chunks, so reruns are byte-identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=False)


def pick(samples: Sequence[Sample], ids: Sequence[str] = (), source: str | None = None,
         task: str | None = None, count: int = 8, seed: int = 0) -> list[Sample]:
    """Samples by id (in the order given), or a seeded random choice among those matching source/task."""
    if ids:
        by_id = {s.id: s for s in samples}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise KeyError(f"no sample with id {missing[0]!r}")
        return [by_id[i] for i in ids]
    pool = [s for s in samples if (source is None or s.source == source) and (task is None or s.task == task)]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(pool), size=min(count, len(pool)), replace=False)) if pool else []
    return [pool[i] for i in chosen]
