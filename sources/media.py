"""Reading media bytes by the `media.path`/`media.frames` paths of a sample.

A path is relative to its source's media root. A path component ending in `.tar` names a tar
archive and the rest names a member inside it (DAM ships its images inside WebDataset tars):
`COCOStuff/images/00000000.tar/000000000092.jpg`.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from sources.base import resolve_inside


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
