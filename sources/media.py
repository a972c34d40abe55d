"""Reading a sample's media: bytes by `media.path`/`media.frames` path, and decoded frames by index.

Frame i of a video file is its i-th decoded frame (PyAV), as the adapters count them.

A path is relative to its source's media root. A path component ending in `.tar` names a tar
archive and the rest names a member inside it (DAM ships its images inside WebDataset tars):
`COCOStuff/images/00000000.tar/000000000092.jpg`.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np
from PIL import Image

from schemas import Sample
from sources.base import resolve_inside


class MissingFrame(FileNotFoundError):
    """A frame index past the end of a video file (a FileNotFoundError, like any missing media)."""


def read_media_bytes(root: Path, relative: str) -> bytes:
    """Bytes of a media file (or tar member) under `root`; raises FileNotFoundError naming it."""
    parts = Path(relative).parts
    for i, part in enumerate(parts[:-1]):
        if part.endswith(".tar"):
            archive = resolve_inside(root, str(Path(*parts[: i + 1])))
            member = "/".join(parts[i + 1 :])
            with tarfile.open(archive) as tar:
                try:
                    f = tar.extractfile(member)
                except KeyError:
                    f = None
                if f is None:
                    raise FileNotFoundError(f"{archive} has no file member {member!r}")
                return f.read()
    path = resolve_inside(root, relative)
    if not path.is_file():
        raise FileNotFoundError(f"no media file at {path}")
    return path.read_bytes()


def load_frames(sample: Sample, root: Path, wanted: Iterable[int]) -> dict[int, np.ndarray]:
    """RGB arrays (media height x width) of the `wanted` frames of an image, frame folder or video file."""
    media = sample.media
    wanted = sorted(set(wanted))
    if media.kind == "image" or media.frames:
        paths = {f: media.path if media.kind == "image" else media.frames[f] for f in wanted}
        images = {f: Image.open(io.BytesIO(read_media_bytes(root, p))) for f, p in paths.items()}
    else:
        images, index = {}, -1
        with av.open(io.BytesIO(read_media_bytes(root, media.path))) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index in wanted:
                    images[index] = frame.to_image()
                if len(images) == len(wanted):
                    break
        if len(images) < len(wanted):
            missing = sorted(set(wanted) - set(images))
            raise MissingFrame(f"{root / media.path} has no frame {missing[0]} (decoded {index + 1} frames)")
    size = (media.width, media.height)
    return {f: np.asarray(im.convert("RGB").resize(size) if im.size != size else im.convert("RGB")) for f, im in images.items()}
