"""Pascal-Part (part masks on PASCAL VOC 2010) -> part recognition samples.

Origin: Chen et al., "Detect What You Can: Detecting and Representing Objects using Holistic
Models and Body Parts" (CVPR 2014), release `trainval.tar.gz` at roozbehm.info/pascal-parts.
We read that release, not a conversion: Osprey's `pascalpart_train.json` (HF
`sunshine-lwt/Osprey-TrainingData`) and the other region-MLLM copies are all derived from its
per-image MATLAB files, which are the one public primary source. One `Annotations_Part/<image>.mat`
per VOC2010 image holds the struct `anno`: `imname`, and `objects`, each with `class` (VOC name),
`class_ind`, `mask` (the silhouette, H x W) and `parts`, each with `part_name` and `mask`.
Parsed with `scipy.io.loadmat` (no code runs while reading).

Part names are the release's abbreviations (`leye`, `lfpa`, `engine_3`); `PART_WORDS` spells them
out from the comments of the release's own `part2ind.m` (also kept as CSAILVision/unifiedparsing
`meta_file/pascal/part2ind.m`): `lhorn` -> `left horn`, `lfpa` -> `left front paw`, and the
numbered `<part>_<n>` instances (engines, wheels, doors, windows, headlights, coaches) become the
part itself. A region's label is "object part" (`cat left eye`). Boat, chair, dining table and
sofa come with silhouettes only: such objects are no part regions and are counted in `meta`.

Per image, every part (objects in order, then parts in order) is a mask region; up to
`regions_per_sample` of them make one "What is the category of <obj0>?" sample, as for PACO.

    pixelrefer ingest --source pascalpart --roots roots.yaml --out out/
    # roots.yaml: {pascalpart: {annotations: /data/pascal-part, media: [/data/VOCdevkit/VOC2010]}}
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from scipy import io as sio
from scipy.io.matlab import MatReadError

from schemas import Media, Reject, Region, RegionFrame, masks
from sources.base import Adapter, Outcome, Unit, isolated
from sources.coco import RecognitionAdapter, chunks
from sources.common import image_size, recognition_turns
from sources.fixtures import Rect, rect_mask, write_image
from sources.roots import Roots

ANNOTATIONS = "Annotations_Part"
IMAGES = "JPEGImages"
OBJECT_WORDS = {"diningtable": "dining table", "pottedplant": "potted plant", "tvmonitor": "tv monitor"}
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
# part2ind.m's part names -> words (its comments; names without a comment are already words).
PART_WORDS = {
    "head": "head", "leye": "left eye", "reye": "right eye", "lear": "left ear", "rear": "right ear",
    "lebrow": "left eyebrow", "rebrow": "right eyebrow", "nose": "nose", "mouth": "mouth", "hair": "hair",
    "torso": "torso", "neck": "neck", "llarm": "left lower arm", "luarm": "left upper arm", "lhand": "left hand",
    "rlarm": "right lower arm", "ruarm": "right upper arm", "rhand": "right hand", "llleg": "left lower leg",
    "luleg": "left upper leg", "lfoot": "left foot", "rlleg": "right lower leg", "ruleg": "right upper leg",
    "rfoot": "right foot", "beak": "beak", "lwing": "left wing", "rwing": "right wing", "lleg": "left leg",
    "rleg": "right leg", "tail": "tail", "body": "body", "stern": "stern", "engine": "engine", "wheel": "wheel",
    "fwheel": "front wheel", "bwheel": "back wheel", "saddle": "saddle", "handlebar": "handle bar",
    "chainwheel": "chain wheel", "headlight": "headlight", "cap": "cap", "frontside": "front side",
    "leftside": "left side", "rightside": "right side", "backside": "back side", "roofside": "roof side",
    "leftmirror": "left mirror", "rightmirror": "right mirror", "fliplate": "front license plate",
    "bliplate": "back license plate", "door": "door", "window": "window", "lfleg": "left front leg",
    "lfpa": "left front paw", "rfleg": "right front leg", "rfpa": "right front paw", "lbleg": "left back leg",
    "lbpa": "left back paw", "rbleg": "right back leg", "rbpa": "right back paw", "muzzle": "muzzle",
    "lhorn": "left horn", "rhorn": "right horn", "lfuleg": "left front upper leg", "lflleg": "left front lower leg",
    "rfuleg": "right front upper leg", "rflleg": "right front lower leg", "lbuleg": "left back upper leg",
    "lblleg": "left back lower leg", "rbuleg": "right back upper leg", "rblleg": "right back lower leg",
    "lfho": "left front hoof", "rfho": "right front hoof", "lbho": "left back hoof", "rbho": "right back hoof",
    "pot": "pot", "plant": "plant", "hfrontside": "head front side", "hleftside": "head left side",
    "hrightside": "head right side", "hbackside": "head back side", "hroofside": "head roof side",
    "coach": "coach", "cfrontside": "coach front side", "cleftside": "coach left side",
    "crightside": "coach right side", "cbackside": "coach back side", "croofside": "coach roof side",
    "screen": "screen",
}
_INSTANCE = re.compile(r"_\d+$")  # engine_3 -> engine


def part_label(object_class: str, part_name: str) -> str | None:
    """`("cat", "lfpa")` -> `"cat left front paw"`; None for a name the release does not define."""
    words = PART_WORDS.get(_INSTANCE.sub("", part_name))
    return f"{OBJECT_WORDS.get(object_class, object_class)} {words}" if words else None


def _items(value: Any) -> list[Any]:
    """A MATLAB struct array as a list (loadmat squeezes one element to a scalar, none to [])."""
    return [] if isinstance(value, np.ndarray) and value.size == 0 else list(np.atleast_1d(value))


class PascalPartAdapter(Adapter):
    name = "pascalpart"
    version = "1"
    license = "Pascal-Part annotations: no licence stated by the authors; VOC2010 images under Flickr terms"
    LAYOUT = """\
Annotations_Part/2008_000002.mat ...   (Pascal-Part trainval.tar.gz)
JPEGImages/2008_000002.jpg ...         (VOC2010: declare VOCdevkit/VOC2010 as a media root, or place it here)
"""
    files_per_unit = 1000
    regions_per_sample = 20
    system_prompt = RecognitionAdapter.system_prompt + (
        " Every region is a part of an object; name it as the object followed by the part, e.g. 'cat left eye'."
    )
    question = RecognitionAdapter.question

    def units(self, roots: Roots) -> list[Unit]:
        folder = roots.annotations / ANNOTATIONS
        names = sorted(p.name for p in folder.glob("*.mat")) if folder.is_dir() else []
        if not names:
            raise FileNotFoundError(f"{folder}: no .mat files (expected layout:\n{self.LAYOUT})")
        return [Unit(self.name, f"{ANNOTATIONS}-{k:05d}", {"files": names[start : start + self.files_per_unit]})
                for k, start in enumerate(range(0, len(names), self.files_per_unit))]

    def inputs(self, roots: Roots, unit: Unit) -> list[Path]:
        return [roots.annotations / ANNOTATIONS / name for name in unit.spec["files"]]

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        for name in unit.spec["files"]:
            yield f"{ANNOTATIONS}/{name}", name

    def outcomes(self, roots: Roots, record: str, locator: str) -> Iterator[Outcome]:
        anno = _load(roots.annotations / ANNOTATIONS / record, locator)
        imname = anno.imname if isinstance(getattr(anno, "imname", None), str) else Path(record).stem
        relative = f"{IMAGES}/{imname}.jpg"
        width, height = image_size(roots, relative, locator)
        usable, silhouettes = [], 0
        for i, item in enumerate(_items(getattr(anno, "objects", []))):
            parts = _items(getattr(item, "parts", []))
            silhouettes += not parts
            for j, part in enumerate(parts):
                where = f"{locator}:objects[{i}].parts[{j}]"
                for result in isolated(where, _region, item, part, width, height, where):
                    if isinstance(result, Reject):
                        yield result
                    else:
                        usable.append(({"object": i, "part": j, "part_name": part.part_name}, result))
        if not usable:
            raise Reject("no_parts", f"no usable part mask ({silhouettes} object(s) with a silhouette only)", locator)
        for group, pairs in enumerate(chunks(usable, self.regions_per_sample)):
            yield from isolated(locator, lambda: self.sample(
                subset="trainval", native_id=f"{imname}_{group}", file=locator, locator=locator, split="trainval",
                task="recognition", media=Media(kind="image", path=relative, width=width, height=height),
                regions=[region for _, region in pairs],
                conversation=recognition_turns(self.system_prompt, self.question, [r.label for _, r in pairs]),
                meta={"imname": imname, "objects_without_parts": silhouettes, "regions": [m for m, _ in pairs]},
            ))

    def write_fixture(self, root: Path) -> None:
        write_fixture(root)


def _load(path: Path, locator: str) -> Any:
    """The `anno` struct of one .mat file (rejects: bad_mat, bad_annotation)."""
    try:
        data = sio.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except (MatReadError, ValueError, TypeError, OSError, NotImplementedError) as err:  # loadmat on a non-MAT file
        raise Reject("bad_mat", f"not a readable MATLAB file: {err}", locator) from None
    anno = data.get("anno")
    if not hasattr(anno, "objects"):
        raise Reject("bad_annotation", "no struct `anno` with `objects` in the file", locator)
    return anno


def _region(item: Any, part: Any, width: int, height: int, locator: str) -> list[Region]:
    """One part as a (one-element list of a) mask region labelled "object part" (rejects: unknown_class, unknown_part,
    mask_size_mismatch, empty_mask)."""
    object_class = getattr(item, "class", None)
    if object_class not in VOC_CLASSES:
        raise Reject("unknown_class", f"object class {object_class!r} is not a VOC class", locator)
    part_name = getattr(part, "part_name", None)
    label = part_label(object_class, part_name) if isinstance(part_name, str) else None
    if label is None:
        raise Reject("unknown_part", f"part name {part_name!r} is not in part2ind.m", locator)
    mask = getattr(part, "mask", None)
    if not isinstance(mask, np.ndarray) or mask.shape != (height, width):
        raise Reject("mask_size_mismatch", f"mask of shape {getattr(mask, 'shape', None)} on a {width}x{height} image", locator)
    rle = masks.encode(mask != 0)
    box = masks.bbox(rle)
    if box is None:
        raise Reject("empty_mask", "the part mask covers no pixel", locator)
    return [Region(label=label, prompt="mask", mask_origin="annotation", frames=[RegionFrame(frame=0, mask=rle, box=box)])]


# ---- fixture: real .mat files (scipy.io.savemat), the structs as the release nests them ----

_PART = [("part_name", "O"), ("mask", "O")]
_OBJECT = [("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")]
CAT, CAT_HEAD, CAT_LEYE, CAT_PAW = (4, 4, 40, 36), (4, 4, 20, 16), (8, 6, 12, 10), (30, 30, 36, 36)
PLANE, ENGINE_1, ENGINE_2, WHEEL = (2, 2, 46, 20), (10, 12, 16, 18), (30, 12, 36, 18), (20, 18, 24, 22)


def _struct_array(dtype: list, rows: list[tuple]) -> np.ndarray:
    """A 1 x N MATLAB struct array (0 x 0, as the release stores 'no parts', when empty)."""
    if not rows:
        return np.zeros((0, 0))
    out = np.zeros((1, len(rows)), dtype=dtype)
    for i, row in enumerate(rows):
        out[0, i] = row
    return out


def _object(cls: str, width: int, height: int, rect: Rect, parts: list[tuple[str, Any]]) -> tuple:
    part_rows = [(name, rect_mask(width, height, r) if isinstance(r, tuple) else r) for name, r in parts]
    return (cls, float(VOC_CLASSES.index(cls) + 1), rect_mask(width, height, rect), _struct_array(_PART, part_rows))


_MAT_HEADER = 116  # the v5 header's text field: savemat writes the platform and the time into it


def _write_mat(path: Path, imname: str, objects: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.savemat(str(path), {"anno": {"imname": imname, "objects": _struct_array(_OBJECT, objects)}})
    # a fixed header text, so the same fixture has the same bytes on every run and machine
    data = bytearray(path.read_bytes())
    data[:_MAT_HEADER] = b"MATLAB 5.0 MAT-file, pixelrefer-data Pascal-Part fixture".ljust(_MAT_HEADER)
    path.write_bytes(bytes(data))


def write_fixture(root: Path) -> None:
    """Four annotated images and a broken file: parts, a silhouette-only object, numbered parts,
    an unknown part name, an empty and a wrong-size part mask, a missing image, a no-part image."""
    mat = root / ANNOTATIONS
    write_image(root / IMAGES / "2008_000001.jpg", 48, 40, [CAT, CAT_HEAD, CAT_LEYE, CAT_PAW], seed=1)
    _write_mat(mat / "2008_000001.mat", "2008_000001", [
        _object("cat", 48, 40, CAT, [("head", CAT_HEAD), ("leye", CAT_LEYE), ("lfpa", CAT_PAW),
                                     ("lwhisker", CAT_HEAD), ("tail", np.zeros((40, 48), np.uint8))]),
        _object("chair", 48, 40, (40, 0, 48, 40), []),
    ])
    write_image(root / IMAGES / "2008_000002.jpg", 48, 24, [PLANE, ENGINE_1, ENGINE_2, WHEEL], seed=2)
    _write_mat(mat / "2008_000002.mat", "2008_000002", [
        _object("aeroplane", 48, 24, PLANE, [("engine_1", ENGINE_1), ("engine_2", ENGINE_2), ("wheel_1", WHEEL),
                                             ("body", np.ones((10, 10), np.uint8))]),
    ])
    _write_mat(mat / "2008_000003.mat", "2008_000003", [_object("cat", 8, 8, (0, 0, 4, 4), [("head", (0, 0, 2, 2))])])
    write_image(root / IMAGES / "2008_000004.jpg", 16, 16, [(2, 2, 12, 12)], seed=4)
    _write_mat(mat / "2008_000004.mat", "2008_000004", [_object("boat", 16, 16, (2, 2, 12, 12), [])])
    (mat / "2008_000005.mat").write_bytes(b"not a MATLAB file")
