"""Base class of adapters whose release is JSON-array files holding one record per sample (Osprey, MDVP).

A subclass says which files it reads (`files`), which subset each file is (`subset`) and how one
record becomes a sample (`sample`, raising `Reject`); units are byte ranges of the files
planned by `sources.jsonarray`, so big files stream and units seek instead of re-parsing.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from pathlib import Path

from schemas import Reject
from sources import jsonarray
from sources.base import Adapter, Outcome, Unit


class JsonRecordsAdapter(Adapter):
    unit_bytes = jsonarray.TARGET_BYTES  # a test may lower it to get several units from a fixture

    @abstractmethod
    def files(self, root: Path) -> list[str]:
        """The release's JSON files under `root`, relative and in a fixed order (FileNotFoundError if none)."""

    @abstractmethod
    def subset(self, file: str) -> str:
        """The sample subset of one file."""

    @abstractmethod
    def sample(self, root: Path, file: str, index: int, record: object) -> Outcome:
        """The validated sample of record `index` of `file`; raises Reject."""

    def units(self, root: Path) -> list[Unit]:
        return [
            Unit(self.name, f"{self.subset(f)}-{span['first']:08d}", {"file": f, **span})
            for f in self.files(root)
            for span in jsonarray.spans(root / f, self.unit_bytes)
        ]

    def convert(self, root: Path, unit: Unit) -> Iterator[Outcome]:
        file = unit.spec["file"]
        for offset, record in enumerate(jsonarray.read_span(root / file, unit.spec)):
            try:
                yield self.sample(root, file, unit.spec["first"] + offset, record)
            except Reject as reject:
                yield reject
