"""Unified input parts for the videoqa/segment tests: frame-folder videos of moving rectangles,
VG-style box/point image samples, and the scripted LLM answers.

The frames are drawn with sources/fixtures.py and written under `root`; the samples go to
OUT/unified/<source>/part-00000.parquet with a source.json pointing at `root`, exactly the
layout ingest writes.
"""

from __future__ import annotations

from pathlib import Path


from pipelines import workspace
from schemas import Media, Provenance, Region, RegionFrame, Sample, Turn, masks
from sources.fixtures import draw, rect_mask, write_image, write_video

W, H = 48, 32
RIGHT = [(2, 2, 10, 10), (14, 2, 22, 10), (26, 2, 34, 10)]  # a block moving right over 3 frames
STILL = [(30, 20, 40, 30)] * 3
CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"  # the tiny SAM 2, built with random weights in tests

ANSWERS = {
    "Annotation": {"objects": [{"index": 0, "appearance": "a red block", "motion": "it slides to the right"}]},
    "QASet": {
        "qa": [
            {"type": "basic", "question": "What is <obj0>?", "answer": "A red block."},
            {"type": "future_prediction", "question": "Where will <obj0> go?", "answer": "Out of view on the right."},
        ],
        "choice": {"question": "Where does <obj0> move?", "options": ["left", "right", "up", "down"], "answer": "B"},
    },
    "Analysis": {"subject": "block", "other_nouns": []},
    "Review": {"accept": False, "reason": "the mask covers the background"},
    "Captions": {"detailed": "<obj0> is a red block.", "short": "A block."},
}



def video_sample(root: Path, source: str, name: str, tracks: list[list[tuple[int, int, int, int] | None]],
                 labels: list[str | None], caption: str = "A red block slides right.") -> Sample:
    """A frame-folder video whose region i covers rect tracks[i][f] on frame f (None: hidden)."""
    n = len(tracks[0])
    frames = [f"JPEGImages/{name}/{f:05d}.jpg" for f in range(n)]
    for f, rel in enumerate(frames):
        write_image(root / rel, W, H, [t[f] for t in tracks if t[f] is not None], seed=f)
    regions = []
    for track, label in zip(tracks, labels):
        rfs = [RegionFrame(frame=f, mask=masks.encode(rect_mask(W, H, r)) if r else masks.empty(H, W))
               for f, r in enumerate(track)]
        rfs = [rf for rf in rfs if masks.area(rf.mask.model_dump())]  # mask prompts: visible frames only
        regions.append(Region(label=label, prompt="mask", mask_origin="annotation", frames=rfs))
    refs = " and ".join(f"<obj{i}>" for i in range(len(tracks)))
    return Sample(
        id=f"{source}/train/{name}", source=source, subset="train", split="train", license="CC-BY-NC-SA-4.0",
        task="video_caption",
        media=Media(kind="video", path=f"JPEGImages/{name}", frames=frames, fps=2.0, width=W, height=H),
        regions=regions,
        conversation=[Turn(role="user", text=f"Describe {refs}."), Turn(role="assistant", text=caption)],
        provenance=Provenance(file="meta.json", locator=name, adapter=source, adapter_version="1"),
    )


def write_source(out: Path, root: Path, source: str, samples: list[Sample], part: int = 0) -> None:
    workspace.write_json_atomic(workspace.unified_dir(out, source) / "source.json", {"source": source, "root": str(root), "adapter_version": "1"})
    workspace.write_part(workspace.part_path(out, source, part), samples, {"read": len(samples), "written": len(samples)})


def write_mp4(path: Path, rects: list[tuple[int, int, int, int]], fps: int = 2) -> None:
    """A small mpeg4 clip, one drawn frame per rect (as the VideoRefer fixture writes them)."""
    write_video(path, [draw(W, H, [rect], seed=i) for i, rect in enumerate(rects)], fps)


def vg_sample(root, index: int, prompt: str) -> Sample:
    rel = f"VG_100K/{index}.jpg"
    write_image(root / rel, W, H, [(8, 6, 30, 24)], seed=index)
    frame = RegionFrame(frame=0, box=(8.0, 6.0, 30.0, 24.0)) if prompt == "box" else RegionFrame(frame=0, point=(19.0, 15.0))
    return Sample(
        id=f"vg/train/{index}", source="vg", subset="train", split="train", license="CC-BY-4.0", task="phrase_caption",
        media=Media(kind="image", path=rel, width=W, height=H),
        regions=[Region(label="block", prompt=prompt, frames=[frame])],
        conversation=[Turn(role="user", text="What is <obj0>?"), Turn(role="assistant", text="a red block")],
        provenance=Provenance(file="region_descriptions.json", locator=f"[{index}]", adapter="vg", adapter_version="1"),
    )
