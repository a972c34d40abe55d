"""MeViS (motion-expression video segmentation) -> referring-expression samples on frame folders.

The release (unchanged) is `LAYOUT` below; `valid/` withholds its masks.

One sample per expression, task `phrase_caption`: the user asks for a short expression of how
the referred objects move and the assistant answers with the MeViS expression. Each `anno_id`
of the expression is its own region (`<obj0> and <obj1>`), so a multi-object expression keeps
one region token per object instead of a union mask; a region spans the frames where its mask
is present (null frames are left out). The video is the sorted frame folder, at 3 fps: MeViS
publishes no frame rate, and 3 fps is what PixelRefer's loader assumes for frame folders.

Rejects: `no_masks` (the split ships no mask_dict.json, as `valid` does: checked first, since
those expressions often list no anno_id either), `no_target` (empty anno_id list),
`mask_missing` (anno_id absent from mask_dict.json), `mask_frames_mismatch`, `frame_missing`,
`object_without_masks`, plus the validation reasons.

mask_dict.json is hundreds of MB: a unit streams it with ijson and keeps only the masks of its
own videos, so memory follows the unit (`VIDEOS_PER_UNIT`), not the file.

    pixelrefer ingest --source mevis --root /data/mevis --out build/
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ijson

from schemas import Reject, Sample, masks
from schemas.placeholders import obj
from sources import fixtures, jsonarray
from sources.base import Adapter, Unit
from sources.common import FRAME_FOLDER_FPS, image_size, mask_region, normalize_text
from sources.roots import Roots

SPLITS = {"train": "train", "valid_u": "val", "valid": "val"}  # folder -> split
VIDEOS_PER_UNIT = 400  # a unit makes one streaming pass over mask_dict.json
MAX_MASK_DEPTH = 64  # a value of mask_dict.json is a list of per-frame RLE dicts: 3 levels
QUESTION = "Give a short expression that refers to {objs} by how {pronoun} in this video."


def objects_phrase(count: int) -> str:
    """`<obj0>`, `<obj0> and <obj1>`, `<obj0>, <obj1> and <obj2>`, ..."""
    names = [obj(i) for i in range(count)]
    return names[0] if count == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@functools.lru_cache(maxsize=4)
def _videos(meta_file: Path) -> dict[str, Any]:
    """The `videos` dict of a meta_expressions.json (a few MB: loaded whole, once per worker).

    Raises ValueError naming the file (and byte) when it is not JSON or has no `videos` object;
    a malformed video or expression inside is that record's reject (see `records`).
    """
    data = jsonarray.load_json(meta_file)
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise ValueError(f"{meta_file}: expected {{\"videos\": {{<video>: ...}}}}")
    return videos


def _well_formed(video: Any) -> bool:
    return isinstance(video, dict) and isinstance(video.get("frames"), list) and isinstance(video.get("expressions"), dict)


def _usable(expression: Any) -> bool:
    return isinstance(expression, dict) and isinstance(expression.get("anno_id", []), list)


def _masks_of(mask_file: Path, anno_ids: set[str]) -> dict[str, list]:
    """The per-frame mask lists of `anno_ids` only, streamed out of a large mask_dict.json.

    Streams ijson's prefix-free `basic_parse` events with a depth bound: its prefixed events
    (`kvitems`) grow with the nesting, so a 400 KB value nested 200k deep takes over 12 GB and
    minutes. A file that is not a readable JSON object is a ValueError naming it, in one line.
    """
    found: dict[str, Any] = {}
    depth, key, builder = 0, None, None
    try:
        with open(mask_file, "rb") as f:
            for event, value in ijson.basic_parse(f, use_float=True):
                if event in ("end_map", "end_array"):
                    depth -= 1
                level = depth  # 0: the top-level object itself; 1: its keys and values
                if event in ("start_map", "start_array"):
                    depth += 1
                    if depth > MAX_MASK_DEPTH:
                        raise jsonarray.JsonFileError(f"{mask_file}: JSON nested more than {MAX_MASK_DEPTH} levels")
                if level == 0:
                    if event not in ("start_map", "end_map"):
                        raise jsonarray.JsonFileError(f"{mask_file}: not a JSON object of anno_id -> per-frame masks")
                elif level == 1 and event == "map_key":
                    key, builder = value, (ijson.ObjectBuilder() if value in anno_ids else None)
                elif builder is not None:
                    builder.event(event, value)
                    if level == 1 and event not in ("start_map", "start_array"):  # the key's value is complete
                        found[key], builder = builder.value, None
    except ijson.JSONError as err:
        reason = err.args[0] if err.args else err
        reason = reason.decode("latin-1") if isinstance(reason, bytes) else str(reason)
        raise jsonarray.JsonFileError(f"{mask_file}: not readable JSON ({reason.strip().splitlines()[0][:200]})") from None
    return found


@functools.lru_cache(maxsize=8)
def _frame_folder(roots: Roots, folder: str, vid: str, names: tuple[str, ...]) -> dict:
    """The media of a video's frame folder; every listed frame must exist (mask lists index them).

    Shared by the video's expressions (cached; a failure is raised again for each of them, with
    no locator, so each expression's reject carries its own).
    """
    relative = f"{folder}/JPEGImages/{vid}"
    directory = roots.media_path(relative)
    present = {p.name for p in directory.iterdir()} if directory.is_dir() else set()
    missing = [n for n in names if f"{n}.jpg" not in present]
    if not names or missing:
        raise Reject("frame_missing", f"{relative} lacks {missing[:3] or 'all frames'}")
    frames = [f"{relative}/{n}.jpg" for n in names]
    width, height = image_size(roots, frames[0], "")
    return dict(kind="video", path=relative, frames=frames, fps=FRAME_FOLDER_FPS, width=width, height=height)


class MevisAdapter(Adapter):
    name = "mevis"
    version = "2"  # 2: an expression of a split without masks is no_masks even when it lists no anno_id
    license = "CC-BY-NC-SA-4.0"
    LAYOUT = """\
train/    JPEGImages/<video>/<frame>.jpg  mask_dict.json  meta_expressions.json
valid_u/  JPEGImages/<video>/<frame>.jpg  mask_dict.json  meta_expressions.json
valid/    JPEGImages/<video>/<frame>.jpg                  meta_expressions.json  (masks withheld)
"""

    def units(self, roots: Roots) -> list[Unit]:
        root = roots.annotations
        folders = [f for f in SPLITS if (root / f / "meta_expressions.json").is_file()]
        if not folders:
            raise FileNotFoundError(f"{root}: no {{train,valid_u,valid}}/meta_expressions.json (expected layout:\n{self.LAYOUT})")
        units = []
        for folder in folders:
            videos = list(_videos(root / folder / "meta_expressions.json"))
            for k in range(0, len(videos), VIDEOS_PER_UNIT):
                units.append(Unit(self.name, f"{folder}:{k:06d}", {"split": folder, "videos": videos[k : k + VIDEOS_PER_UNIT]}))
        return units

    def inputs(self, roots: Roots, unit: Unit) -> list[Path]:
        folder = roots.annotations / unit.spec["split"]
        return [p for p in (folder / "meta_expressions.json", folder / "mask_dict.json") if p.is_file()]

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        """`(folder, video id, video, expression id, expression, the unit's masks or None)` per expression."""
        folder = unit.spec["split"]
        videos = _videos(roots.annotations / folder / "meta_expressions.json")
        mask_file = roots.annotations / folder / "mask_dict.json"
        good = [v for v in unit.spec["videos"] if _well_formed(videos[v])]
        wanted = {str(a) for v in good for e in videos[v]["expressions"].values() if _usable(e) for a in e.get("anno_id") or []}
        mask_lists = _masks_of(mask_file, wanted) if mask_file.is_file() else None
        for vid in unit.spec["videos"]:
            where = f"{folder}/meta_expressions.json videos.{vid}"
            if vid not in good:
                yield where, Reject("bad_record", "a video needs a `frames` list and an `expressions` object", where)
                continue
            for exp_id, expression in videos[vid]["expressions"].items():
                locator = f"{where}.expressions.{exp_id}"
                if not _usable(expression):
                    yield locator, Reject("bad_record", "an expression must be an object whose `anno_id` is a list", locator)
                    continue
                yield locator, (folder, vid, videos[vid], exp_id, expression, mask_lists)

    def outcomes(self, roots: Roots, record: tuple, locator: str) -> Sample:
        folder, vid, video, exp_id, expression, mask_lists = record
        anno_ids = expression.get("anno_id") or []
        if mask_lists is None:
            raise Reject("no_masks", f"{folder}/ ships no mask_dict.json (its masks are withheld)", locator)
        if not anno_ids:
            raise Reject("no_target", f"expression {expression.get('exp')!r} refers to no object", locator)
        # the official loaders sort the frames before indexing the mask lists
        media = _frame_folder(roots, folder, vid, tuple(sorted(video.get("frames") or [])))
        regions = [self._region(mask_lists, str(a), media, f"{locator} anno_id {a}") for a in anno_ids]
        question = QUESTION.format(objs=objects_phrase(len(regions)), pronoun="it moves" if len(regions) == 1 else "they move")
        return self.sample(
            subset=folder, native_id=f"{vid}_{exp_id}", file=f"{folder}/meta_expressions.json", locator=locator,
            split=SPLITS[folder], task="phrase_caption", media=media, regions=regions,
            conversation=[dict(role="user", text=question), dict(role="assistant", text=normalize_text(str(expression.get("exp", ""))))],
            meta={"video": vid, "exp_id": exp_id, "obj_id": expression.get("obj_id", []), "anno_id": anno_ids},
        )

    @staticmethod
    def _region(mask_lists: dict, anno_id: str, media: dict, where: str) -> dict:
        per_frame = mask_lists.get(anno_id)
        if per_frame is None:
            raise Reject("mask_missing", f"anno_id {anno_id} is not in mask_dict.json", where)
        if not isinstance(per_frame, list) or len(per_frame) != len(media["frames"]):
            raise Reject("mask_frames_mismatch", f"expected a list of {len(media['frames'])} per-frame masks", where)
        return mask_region(enumerate(per_frame), media["height"], media["width"], where)

    def write_fixture(self, root: Path) -> None:
        write_fixture(root)


# ---- fixture: 32x24 frames; object 10 slides right, object 11 sits low and vanishes on frame 1 ----

FIXTURE_SIZE = (32, 24)
FIXTURE_RECTS = {"10": [(2, 2, 10, 8), (8, 2, 16, 8), (14, 2, 22, 8)], "11": [(20, 14, 28, 22), None, (20, 14, 28, 22)]}


def _rle(rect: fixtures.Rect | None) -> dict | None:
    return None if rect is None else masks.encode(fixtures.rect_mask(*FIXTURE_SIZE, rect))


def write_fixture(root: Path) -> None:
    """train (single, multi-object, no-target, never-visible, missing-mask expressions) and valid
    (no masks; one expression with anno_ids, one without)."""
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
        "vid_c": {"frames": ["00000", "00001"], "expressions": {
            "0": {"exp": "the moving block", "obj_id": [0], "anno_id": [0]},
            "1": {"exp": "the block that stays"}}}}})  # withheld: no anno_id at all
