"""MeViS (motion-expression video segmentation) -> referring-expression samples on frame folders.

Expected tree under `--root` (the official release, unchanged):

    train/   JPEGImages/<video>/<frame>.jpg, mask_dict.json, meta_expressions.json
    valid_u/ JPEGImages/<video>/<frame>.jpg, mask_dict.json, meta_expressions.json
    valid/   JPEGImages/<video>/<frame>.jpg,                 meta_expressions.json  (masks withheld)

One sample per expression, task `phrase_caption`: the user asks for a short expression of how
the referred objects move and the assistant answers with the MeViS expression. Each `anno_id`
of the expression is its own region (`<obj0> and <obj1>`), so a multi-object expression keeps
one region token per object instead of a union mask; a region spans the frames where its mask
is present (null frames are left out). The video is the sorted frame folder, at 3 fps: MeViS
publishes no frame rate, and 3 fps is what PixelRefer's loader assumes for frame folders.

Rejects: `no_target` (empty anno_id list), `no_masks` (the `valid` split ships no
mask_dict.json), `mask_missing` (anno_id absent from mask_dict.json), `mask_frames_mismatch`,
`frame_missing`, `object_without_masks`, plus the validation reasons.

mask_dict.json is hundreds of MB: a unit streams it with ijson and keeps only the masks of its
own videos, so memory follows the unit (`VIDEOS_PER_UNIT`), not the file.

    pixelrefer ingest --source mevis --root /data/mevis --out build/
"""

from __future__ import annotations

import functools
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ijson

from schemas import Provenance, Reject, Sample, make_id, masks, validate
from schemas.placeholders import obj
from sources import fixtures
from sources.base import Adapter, Outcome, Unit, resolve_inside
from sources.common import FRAME_FOLDER_FPS, image_size, mask_region, normalize_text, outcome

SPLITS = {"train": "train", "valid_u": "val", "valid": "val"}  # folder -> split
VIDEOS_PER_UNIT = 400  # a unit makes one streaming pass over mask_dict.json
QUESTION = "Give a short expression that refers to {objs} by how {pronoun} in this video."


def objects_phrase(count: int) -> str:
    """`<obj0>`, `<obj0> and <obj1>`, `<obj0>, <obj1> and <obj2>`, ..."""
    names = [obj(i) for i in range(count)]
    return names[0] if count == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@functools.lru_cache(maxsize=4)
def _videos(meta_file: Path) -> dict[str, Any]:
    """The `videos` dict of a meta_expressions.json (a few MB: loaded whole, once per worker).

    Raises ValueError naming the file and video when the structure is not the official one.
    """
    with open(meta_file, encoding="utf-8") as f:
        videos = json.load(f).get("videos")
    if not isinstance(videos, dict):
        raise ValueError(f"{meta_file}: expected {{\"videos\": {{<video>: ...}}}}")
    for vid, video in videos.items():
        if not (isinstance(video, dict) and isinstance(video.get("frames"), list) and isinstance(video.get("expressions"), dict)
                and all(isinstance(e, dict) and isinstance(e.get("anno_id", []), list) for e in video["expressions"].values())):
            raise ValueError(f"{meta_file}: video {vid!r} needs a `frames` list and an `expressions` dict of "
                             "objects whose `anno_id` is a list")
    return videos


def _masks_of(mask_file: Path, anno_ids: set[str]) -> dict[str, list]:
    """The per-frame mask lists of `anno_ids` only, streamed out of a large mask_dict.json."""
    with open(mask_file, "rb") as f:
        return {key: value for key, value in ijson.kvitems(f, "", use_float=True) if key in anno_ids}


class MevisAdapter(Adapter):
    name = "mevis"
    version = "1"
    license = "CC-BY-NC-SA-4.0"
    layout = textwrap.dedent(__doc__.split("\n\n")[2])  # the tree in the docstring above

    def units(self, root: Path) -> list[Unit]:
        folders = [f for f in SPLITS if (root / f / "meta_expressions.json").is_file()]
        if not folders:
            raise FileNotFoundError(f"{root}: no {{train,valid_u,valid}}/meta_expressions.json (expected {self.layout})")
        units = []
        for folder in folders:
            videos = list(_videos(root / folder / "meta_expressions.json"))
            for k in range(0, len(videos), VIDEOS_PER_UNIT):
                units.append(Unit(self.name, f"{folder}:{k:06d}", {"split": folder, "videos": videos[k : k + VIDEOS_PER_UNIT]}))
        return units

    def convert(self, root: Path, unit: Unit) -> Iterator[Outcome]:
        folder = unit.spec["split"]
        videos = _videos(root / folder / "meta_expressions.json")
        mask_file = root / folder / "mask_dict.json"
        wanted = {str(a) for v in unit.spec["videos"] for e in videos[v]["expressions"].values() for a in e.get("anno_id") or []}
        mask_lists = _masks_of(mask_file, wanted) if mask_file.is_file() else None
        for vid in unit.spec["videos"]:
            media = outcome(self._media, root, folder, vid, videos[vid])
            for exp_id, expression in videos[vid]["expressions"].items():
                locator = f"{folder}/meta_expressions.json videos.{vid}.expressions.{exp_id}"
                yield outcome(self._sample, folder, vid, exp_id, expression, media, mask_lists, locator)

    def _sample(self, folder: str, vid: str, exp_id: str, expression: dict, media: Any, mask_lists: dict | None, locator: str) -> Sample:
        anno_ids = expression.get("anno_id") or []
        if not anno_ids:
            raise Reject("no_target", f"expression {expression.get('exp')!r} refers to no object", locator)
        if mask_lists is None:
            raise Reject("no_masks", f"{folder}/ ships no mask_dict.json (its masks are withheld)", locator)
        if isinstance(media, Reject):  # a video-level problem, counted once per expression
            raise Reject(media.reason, media.message, locator)
        regions = [self._region(mask_lists, str(a), media, f"{locator} anno_id {a}") for a in anno_ids]
        objs = objects_phrase(len(regions))
        question = QUESTION.format(objs=objs, pronoun="it moves" if len(regions) == 1 else "they move")
        sample = dict(
            id=make_id(self.name, folder, f"{vid}_{exp_id}"), source=self.name, subset=folder, split=SPLITS[folder],
            license=self.license, task="phrase_caption", media=media, regions=regions,
            conversation=[dict(role="user", text=question), dict(role="assistant", text=normalize_text(str(expression.get("exp", ""))))],
            meta={"video": vid, "exp_id": exp_id, "obj_id": expression.get("obj_id", []), "anno_id": anno_ids},
            provenance=Provenance(file=f"{folder}/meta_expressions.json", locator=locator, adapter=self.name, adapter_version=self.version),
        )
        return validate(sample, locator)

    @staticmethod
    def _region(mask_lists: dict, anno_id: str, media: dict, where: str) -> dict:
        per_frame = mask_lists.get(anno_id)
        if per_frame is None:
            raise Reject("mask_missing", f"anno_id {anno_id} is not in mask_dict.json", where)
        if not isinstance(per_frame, list) or len(per_frame) != len(media["frames"]):
            raise Reject("mask_frames_mismatch", f"expected a list of {len(media['frames'])} per-frame masks", where)
        return mask_region(enumerate(per_frame), media["height"], media["width"], where)

    @staticmethod
    def _media(root: Path, folder: str, vid: str, video: dict) -> dict:
        """The frame folder of a video; every listed frame must exist (mask lists index them)."""
        relative = f"{folder}/JPEGImages/{vid}"
        locator = f"{folder}/meta_expressions.json videos.{vid}"
        directory = resolve_inside(root, relative, locator)
        present = {p.name for p in directory.iterdir()} if directory.is_dir() else set()
        names = sorted(video.get("frames") or [])  # the official loaders sort before indexing masks
        missing = [n for n in names if f"{n}.jpg" not in present]
        if not names or missing:
            raise Reject("frame_missing", f"{relative} lacks {missing[:3] or 'all frames'}", locator)
        frames = [f"{relative}/{n}.jpg" for n in names]
        width, height = image_size(root, frames[0], locator)
        return dict(kind="video", path=relative, frames=frames, fps=FRAME_FOLDER_FPS, width=width, height=height)

    def write_fixture(self, root: Path) -> None:
        write_fixture(root)


# ---- fixture: 32x24 frames; object 10 slides right, object 11 sits low and vanishes on frame 1 ----

FIXTURE_SIZE = (32, 24)
FIXTURE_RECTS = {"10": [(2, 2, 10, 8), (8, 2, 16, 8), (14, 2, 22, 8)], "11": [(20, 14, 28, 22), None, (20, 14, 28, 22)]}


def _rle(rect: fixtures.Rect | None) -> dict | None:
    return None if rect is None else masks.encode(fixtures.rect_mask(*FIXTURE_SIZE, rect))


def write_fixture(root: Path) -> None:
    """train (single, multi-object, no-target, never-visible, missing-mask expressions) and valid (no masks)."""
    width, height = FIXTURE_SIZE
    for folder, vid, count in (("train", "vid_a", 3), ("train", "vid_b", 2), ("valid", "vid_c", 2)):
        for i in range(count):
            rects = [r[i] for r in FIXTURE_RECTS.values() if r[i] is not None]
            fixtures.write_image(root / f"{folder}/JPEGImages/{vid}/{i:05d}.jpg", width, height, rects, seed=i)
    fixtures.write_json(root / "train/meta_expressions.json", {"videos": {
        "vid_a": {"frames": ["00002", "00000", "00001"], "expressions": {
            "0": {"exp": "the  block moving to the right", "obj_id": [0], "anno_id": [10]},
            "1": {"exp": "two blocks, one of them blinking", "obj_id": [0, 1], "anno_id": [10, 11]},
            "2": {"exp": "a cat that is not there", "obj_id": [], "anno_id": []},
            "3": {"exp": "the invisible block", "obj_id": [2], "anno_id": [12]}}},
        "vid_b": {"frames": ["00000", "00001"], "expressions": {
            "0": {"exp": "the block whose masks are lost", "obj_id": [0], "anno_id": [99]}}}}})
    fixtures.write_json(root / "train/mask_dict.json", {
        "10": [_rle(r) for r in FIXTURE_RECTS["10"]], "11": [_rle(r) for r in FIXTURE_RECTS["11"]], "12": [None, None, None]})
    fixtures.write_json(root / "valid/meta_expressions.json", {"videos": {
        "vid_c": {"frames": ["00000", "00001"], "expressions": {"0": {"exp": "the moving block", "obj_id": [0], "anno_id": [0]}}}}})
