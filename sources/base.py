"""The contract every source adapter implements (one module per dataset in `sources/`).

An adapter reads one public release in its official layout under a root folder:

* `units(root)` splits the release into independent, ordered units of work (a slice of
  images, a tar member range, a byte range of a JSON array) small enough to ship to a Ray
  worker as a tiny JSON-able `Unit`;
* `convert(root, unit)` turns one unit into outcomes, in a deterministic order: one `Sample`
  or one `Reject` per candidate sample, so `read = written + rejected` holds by construction;
* `write_fixture(root)` writes a tiny deterministic copy of the release in the same native
  layout (known shapes, so masks are exact), including records for each known trap.

Adapters import only from `schemas` (DESIGN.md section 2).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas import Reject, Sample

Outcome = Sample | Reject


@dataclass(frozen=True)
class Unit:
    """One independent piece of a source's work, cheap to pickle."""

    source: str
    name: str  # stable and unique within the source; sorts the output parts
    spec: dict[str, Any] = field(default_factory=dict, hash=False)  # adapter-specific, JSON-able


class Adapter(ABC):
    """Base class of source adapters; subclasses set the class attributes below."""

    name: str = ""
    version: str = "1"
    license: str = ""
    layout: str = ""  # the expected tree under --root, shown by `pixelrefer sources`

    @abstractmethod
    def units(self, root: Path) -> list[Unit]:
        """Ordered units of work for the release under `root` (raise FileNotFoundError naming what is missing)."""

    @abstractmethod
    def convert(self, root: Path, unit: Unit) -> Iterator[Outcome]:
        """Samples or rejects for one unit, in a deterministic order."""

    @abstractmethod
    def write_fixture(self, root: Path) -> None:
        """Write a tiny native-layout copy of the release under `root`."""


def resolve_inside(root: Path, relative: str, locator: str = "") -> Path:
    """`root / relative`, or a `path_escapes_root` reject for absolute paths and `..` escapes."""
    if not relative or Path(relative).is_absolute():
        raise Reject("path_escapes_root", f"path {relative!r} is empty or absolute", locator)
    root = root.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise Reject("path_escapes_root", f"path {relative!r} resolves outside the source root", locator)
    return path
