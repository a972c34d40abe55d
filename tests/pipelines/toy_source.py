"""A tiny source adapter for the pipeline tests: `annotations.json` records over PNG images.

Each record `{subset, image, rect, label}` becomes one recognition sample with an exact
rectangle mask; three records make one unit. A file `sleep-<unit name>` in the root makes that
unit hang (the interrupted-ingest test kills the run there); it does not change any output. A
file `fail-<unit name>` makes reading that unit fail (as an unreadable file would).
`ToyCopy` reads the same layout under another source name, so two roots holding the same
images and records are exact cross-source duplicates.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas import Media, Region, RegionFrame, Reject, Sample, Turn, masks
from sources.base import Adapter, Unit
from sources.common import image_size
from sources.roots import Roots
from sources.fixtures import rect_mask, write_image, write_json

REGISTRY = {"toy": "tests.pipelines.toy_source:ToySource", "toy2": "tests.pipelines.toy_source:ToyCopy"}

RECORDS_PER_UNIT = 3


def fixture_records(n: int) -> list[dict]:
    """`n` records over 4 images; record 4 has no label, record 7 a missing image, record 9 an empty rect."""
    records = []
    for i in range(n):
        x = 2 + i % 5
        records.append({"subset": "a" if i % 3 else "b", "image": f"images/{i % 4}.png",
                        "rect": [x, 3, x + 6, 9], "label": f"thing{i % 5}"})
    if n > 9:
        records[4]["label"] = ""
        records[7]["image"] = "images/missing.png"
        records[9]["rect"] = [20, 3, 20, 9]
    return records


class ToySource(Adapter):
    name = "toy"
    version = "1"
    license = "CC0-1.0"
    LAYOUT = "annotations.json, images/<n>.png"

    def units(self, roots: Roots) -> list[Unit]:
        n = len(self._records(roots.annotations))
        return [Unit(self.name, f"records-{i:05d}", {"start": i, "stop": min(i + RECORDS_PER_UNIT, n)})
                for i in range(0, n, RECORDS_PER_UNIT)]

    def inputs(self, roots: Roots, unit: Unit) -> list[Path]:
        return [roots.annotations / "annotations.json"]

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        if (roots.annotations / f"sleep-{unit.name}").exists():
            time.sleep(600)
        if (roots.annotations / f"fail-{unit.name}").exists():
            raise OSError(f"cannot read unit {unit.name}")
        start, stop = unit.spec["start"], unit.spec["stop"]
        for index, record in enumerate(self._records(roots.annotations)[start:stop], start):
            yield f"annotations.json[{index}]", (index, record)

    def write_fixture(self, root: Path, n: int = 12) -> None:
        for i in range(4):
            write_image(root / f"images/{i}.png", 24, 16, [(i, 1, i + 4, 5)], seed=i)
        write_json(root / "annotations.json", fixture_records(n))

    @staticmethod
    def _records(root: Path) -> list[dict]:
        return json.loads((root / "annotations.json").read_text(encoding="utf-8"))

    def outcomes(self, roots: Roots, record: tuple[int, dict], locator: str) -> Sample:
        index, record = record
        if not record["label"]:
            raise Reject("no_label", "the record has an empty label", locator)
        width, height = image_size(roots, record["image"], locator)
        rle = masks.encode(rect_mask(width, height, tuple(record["rect"])))
        return self.sample(
            subset=record["subset"], native_id=index, file="annotations.json", locator=locator, task="recognition",
            media=Media(kind="image", path=record["image"], width=width, height=height),
            regions=[Region(label=record["label"], prompt="mask", mask_origin="annotation",
                            frames=[RegionFrame(frame=0, mask=rle, box=masks.bbox(rle))])],
            conversation=[Turn(role="user", text="What is <obj0>?"), Turn(role="assistant", text=record["label"])],
        )


class ToyCopy(ToySource):
    name = "toy2"
