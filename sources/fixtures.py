"""Drawing helpers for the native-format fixture writers (`Adapter.write_fixture`).

Fixtures are tiny, deterministic copies of a release: images are flat backgrounds with filled
axis-aligned rectangles at known places, so that the masks written beside them are exact.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (pixel edges, x1/y1 exclusive)

PALETTE = [(220, 40, 40), (40, 160, 60), (40, 80, 220), (230, 200, 40), (160, 60, 200), (40, 200, 200)]


def draw(width: int, height: int, rects: Sequence[Rect], seed: int = 0) -> np.ndarray:
    """An RGB frame: grey background with a slight seeded texture, each rect filled in a palette colour."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 128, dtype=np.uint8) + rng.integers(0, 8, (height, width, 1), dtype=np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(rects):
        img[y0:y1, x0:x1] = PALETTE[i % len(PALETTE)]
    return img


def rect_mask(width: int, height: int, rect: Rect) -> np.ndarray:
    """The binary mask of one rect."""
    m = np.zeros((height, width), dtype=np.uint8)
    x0, y0, x1, y1 = rect
    m[y0:y1, x0:x1] = 1
    return m


def rect_polygon(rect: Rect) -> list[float]:
    """A COCO polygon ring that pycocotools rasterises to exactly `rect_mask(rect)`."""
    x0, y0, x1, y1 = rect
    return [float(x0), float(y0), float(x1), float(y0), float(x1), float(y1), float(x0), float(y1)]


def write_image(path: Path, width: int, height: int, rects: Sequence[Rect] = (), seed: int = 0) -> None:
    """Write a JPEG (by suffix .jpg/.jpeg, quality 90) or PNG frame deterministically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(draw(width, height, rects, seed))
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, format="JPEG", quality=90)
    else:
        image.save(path, format="PNG")


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_video(path: Path, frames: list[np.ndarray], fps: int, container_format: str = "mp4") -> None:
    """An mpeg4 clip of RGB `frames`, byte-identical across runs (bitexact, one thread); a
    "matroska" container has no frame count in its header."""
    import av  # only the video fixtures need PyAV

    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", format=container_format, options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt, stream.thread_count = width, height, "yuv420p", 1
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
