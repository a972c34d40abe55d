"""Reading a sample's media: bytes by `media.path`/`media.frames` path, and decoded frames by index.

Frame i of a video file is its i-th decoded frame (PyAV), as the adapters count them.

A path is relative to its source's roots (`sources.roots.Roots`: the annotation root, then each
declared media root) and is looked up with `Roots.media_path`, so a path that leaves them is a
`path_escapes_root` Reject. A path component ending in `.tar` names a tar archive and the rest
names a member inside it (DAM ships its images inside WebDataset tars):
`COCOStuff/images/00000000.tar/000000000092.jpg`.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from schemas import Sample
from sources.imagedecode import MAX_PIXELS, decode_rgb
from sources.roots import Roots
from tokenization import shardformat


class MissingFrame(FileNotFoundError):
    """A frame index past the end of a video (a FileNotFoundError, like any missing media)."""


def read_media_bytes(roots: Roots | Path, relative: str) -> bytes:
    """Bytes of a media file (or tar member) a sample names; raises FileNotFoundError naming it."""
    roots = Roots.of(roots)
    parts = relative.split("/")
    archive_end = next((i + 1 for i, part in enumerate(parts[:-1]) if part.endswith(".tar")), None)
    if archive_end is None:
        path = roots.media_path(relative)
        if not path.is_file():
            raise FileNotFoundError(f"no media file at {path}")
        return path.read_bytes()
    archive = roots.media_path("/".join(parts[:archive_end]))
    member = "/".join(parts[archive_end:])
    with tarfile.open(archive) as tar:
        try:
            f = tar.extractfile(member)
        except KeyError:
            f = None
        if f is None:
            raise FileNotFoundError(f"{archive} has no file member {member!r}")
        return f.read()


def load_frames(sample: Sample, roots: Roots | Path, wanted: Iterable[int]) -> dict[int, np.ndarray]:
    """RGB arrays (media height x width) of the `wanted` frames of an image, frame folder or video file.

    A frame past the end raises MissingFrame, without decoding when the media says how many
    frames it has; an image that cannot be decoded or is too large raises
    `sources.imagedecode.ImageDecodeError` (a ValueError whose `reason` names the reject).
    """
    roots = Roots.of(roots)
    media = sample.media
    size = (media.width, media.height)  # PIL order; an array's shape is (height, width, 3)
    wanted = sorted(set(wanted))
    count = media.frame_count
    if count is not None and wanted and wanted[-1] >= count:
        raise MissingFrame(f"{roots.media_path(media.path)} has no frame {wanted[-1]} (it has {count} frames)")
    if media.kind == "image" or media.frames:
        paths = {f: media.path if media.kind == "image" else media.frames[f] for f in wanted}
        frames = {f: decode_rgb(read_media_bytes(roots, p), MAX_PIXELS) for f, p in paths.items()}
    else:
        frames, decoded = shardformat.clip_frames(read_media_bytes(roots, media.path), wanted, size)
        if len(frames) < len(wanted):
            missing = sorted(set(wanted) - set(frames))
            raise MissingFrame(f"{roots.media_path(media.path)} has no frame {missing[0]} (decoded {decoded} frames)")
    return {f: shardformat.fit(rgb, size) for f, rgb in frames.items()}
