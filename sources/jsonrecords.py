"""Base class of adapters whose release is JSON-array files holding one record per sample (Osprey, MDVP).

A subclass says which files it reads (`files`), which subset each file is (`subset`) and how one
record becomes a sample (`outcomes`, which gets a `JsonRecord`: the element with the file and
index it came from); units are byte ranges of the files planned by `sources.jsonarray`, so big
files stream and units seek instead of re-parsing.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, NamedTuple

from sources import jsonarray
from sources.base import Adapter, Unit
from sources.roots import Roots


class JsonRecord(NamedTuple):
    """One element of a release file: `file` relative to the annotation root, `index` in its array."""

    file: str
    index: int
    value: Any


class JsonRecordsAdapter(Adapter):
    unit_bytes = jsonarray.TARGET_BYTES  # a test may lower it to get several units from a fixture

    @abstractmethod
    def files(self, roots: Roots) -> list[str]:
        """The release's JSON files under the annotation root, relative and in a fixed order (FileNotFoundError if none)."""

    @abstractmethod
    def subset(self, file: str) -> str:
        """The sample subset of one file."""

    def units(self, roots: Roots) -> list[Unit]:
        return [
            Unit(self.name, f"{self.subset(f)}-{span['first']:08d}", {"file": f, **span})
            for f in self.files(roots)
            for span in jsonarray.spans(roots.annotations / f, self.unit_bytes)
        ]

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, JsonRecord]]:
        file, first = unit.spec["file"], unit.spec["first"]
        for offset, value in enumerate(jsonarray.read_span(roots.annotations / file, unit.spec)):
            yield f"{file}[{first + offset}]", JsonRecord(file, first + offset, value)
