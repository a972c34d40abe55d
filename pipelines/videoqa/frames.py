"""Video frames for the engine: decoded from frame folders or video files, and highlighted for
the vision agents (Annotator, Reviewer) as PNG bytes.

Highlighting is `pipelines.render.draw_regions`: each region's mask tinted in its colour, its
box outlined, tagged `<obj{i}>` (the same names the prompt uses), on up to `count` annotated
frames spread evenly. Frames are read by `sources.media.load_frames`.
"""

from __future__ import annotations

import io

from PIL import Image

from pipelines.render import annotated_frames, draw_regions
from schemas import Sample
from sources.media import load_frames
from sources.roots import Roots

MAX_SIDE = 448  # long side of a prompt image: enough to see the object, cheap in image tokens


def _png(image: Image.Image) -> bytes:
    scale = MAX_SIDE / max(image.size)
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def frame_images(sample: Sample, root: Roots, count: int) -> tuple[bytes, ...]:
    """Up to `count` highlighted annotated frames as PNG (none when count is 0)."""
    if count <= 0:
        return ()
    picks = annotated_frames(sample, count)
    frames = load_frames(sample, root, picks)
    return tuple(_png(draw_regions(Image.fromarray(frames[f]), sample, f)) for f in picks)
