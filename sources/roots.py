"""Where a source's files are: its annotation folder and the media folders the user declared.

A roots-file entry is either a folder (annotations and media under one tree, as the release
unpacks) or `{annotations: DIR, media: [DIR, ...]}`, so one COCO folder serves LVIS, PACO,
RefCOCO, Osprey, MDVP and DAM without copies:

    lvis: /data/lvis                                   # lvis_v1_*.json + train2017/ val2017/
    paco: {annotations: /data/paco/annotations, media: [/data/coco]}

What is trusted: the folders the user declares, and whatever the user placed at or under them
(a symlink from one declared root to another works). What is not: any path named *inside a
dataset file*. Such a path is looked up under the annotation folder, then each media folder in
order, and is accepted only if it resolves (symlinks followed) inside one of the declared
roots; `..`, absolute paths and links leading anywhere else are `path_escapes_root` rejects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemas import Reject


@dataclass(frozen=True)
class Roots:
    """A source's annotation root and extra media roots, all resolved (symlinks followed)."""

    annotations: Path
    media: tuple[Path, ...] = ()

    @classmethod
    def of(cls, value: Roots | Path | str, media: tuple[Path | str, ...] | list[Path | str] = ()) -> Roots:
        """Roots from a Roots (returned as is), or a folder plus optional media folders."""
        if isinstance(value, Roots):
            return value
        return cls(Path(value).resolve(), tuple(Path(m).resolve() for m in media))

    @property
    def declared(self) -> tuple[Path, ...]:
        """The annotation root, then the media roots: the order media paths are looked up in."""
        return (self.annotations, *(m for m in self.media if m != self.annotations))

    def media_path(self, relative: str, locator: str = "", under: str = "") -> Path:
        """The file a dataset names by `relative` (below `under` in each root): the first declared
        root that holds it, else its would-be place under the annotation root (the caller reports
        it missing). Raises a `path_escapes_root` Reject for a path that leaves the declared roots."""
        if not relative or Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise Reject("path_escapes_root", f"path {relative!r} is empty, absolute or climbs with '..'", locator)
        candidates = [(root / under / relative) for root in self.declared]
        try:
            for candidate in candidates:
                if candidate.exists() or candidate.is_symlink():
                    return self._contained(candidate, relative, locator)
            return self._contained(candidates[0], relative, locator)
        except OSError as err:  # a name too long for the file system, a symlink loop, ...
            raise Reject("bad_path", f"path {relative[:200]!r}: {err.strerror or err}", locator) from None
        except ValueError as err:  # a lone surrogate or NUL: not encodable as a file name
            raise Reject("bad_path", f"path {relative[:200]!r}: {err}", locator) from None

    def to_json(self) -> dict[str, object]:
        return {"root": str(self.annotations), "media": [str(m) for m in self.media]}

    @classmethod
    def from_json(cls, info: dict[str, object]) -> Roots:
        return cls(Path(str(info["root"])), tuple(Path(str(m)) for m in info.get("media", [])))  # type: ignore[union-attr]

    def _contained(self, path: Path, relative: str, locator: str) -> Path:
        resolved = path.resolve()
        if not any(resolved.is_relative_to(root) for root in self.declared):
            raise Reject("path_escapes_root", f"path {relative!r} resolves to {resolved}, outside the declared roots", locator)
        return resolved
