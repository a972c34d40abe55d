"""Small valid samples for tests, built field by field (no fixtures on disk)."""

from __future__ import annotations

import numpy as np

from schemas import Media, Provenance, Region, RegionFrame, Sample, Turn
from schemas import masks


def square_mask(height: int, width: int, y0: int, x0: int, size: int) -> dict:
    m = np.zeros((height, width), dtype=np.uint8)
    m[y0 : y0 + size, x0 : x0 + size] = 1
    return masks.encode(m)


def image_sample(**changes) -> Sample:
    """A valid one-region recognition sample on a 40x60 image; `changes` override fields."""
    rle = square_mask(40, 60, 10, 20, 8)
    data = dict(
        id="lvis/val2017/42",
        source="lvis",
        subset="val2017",
        split="val",
        license="CC-BY-4.0",
        task="recognition",
        media=Media(kind="image", path="val2017/000000000042.jpg", width=60, height=40),
        regions=[
            Region(
                label="car",
                prompt="mask",
                mask_origin="annotation",
                frames=[RegionFrame(frame=0, mask=rle, box=masks.bbox(rle))],
            )
        ],
        conversation=[
            Turn(role="system", text="Answer with a category name."),
            Turn(role="user", text="What is <obj0>?"),
            Turn(role="assistant", text="car"),
        ],
        meta={"neg_category_ids": [3, 7], "note": "ünïcode"},
        provenance=Provenance(file="lvis_v1_val.json", locator="annotations[0]", adapter="lvis", adapter_version="1"),
    )
    data.update(changes)
    return Sample(**data)


def video_sample() -> Sample:
    """A valid two-region video QA sample on a 3-frame folder of 32x32 frames."""
    a = square_mask(32, 32, 2, 2, 6)
    return Sample(
        id="mevis/train/vid1_exp0",
        source="mevis",
        subset="train",
        split="train",
        license="CC-BY-NC-SA-4.0",
        task="video_qa",
        media=Media(
            kind="video",
            path="JPEGImages/vid1",
            frames=["JPEGImages/vid1/00000.jpg", "JPEGImages/vid1/00001.jpg", "JPEGImages/vid1/00002.jpg"],
            fps=3.0,
            timestamps=[0.0, 1 / 3, 2 / 3],
            width=32,
            height=32,
        ),
        regions=[
            Region(prompt="mask", mask_origin="annotation", frames=[RegionFrame(frame=0, mask=a), RegionFrame(frame=2, mask=a)]),
            Region(label="ball", prompt="box", frames=[RegionFrame(frame=1, box=(20.0, 20.0, 25.0, 25.0))]),
        ],
        conversation=[
            Turn(role="user", text="Where does <obj0> go relative to <obj1>?"),
            Turn(role="assistant", text="<obj0> moves toward <obj1>."),
            Turn(role="user", text="And then?"),
            Turn(role="assistant", text="It stops."),
        ],
        provenance=Provenance(file="meta_expressions.json", locator="videos.vid1.expressions.0", adapter="mevis", adapter_version="1"),
    )
