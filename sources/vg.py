"""Visual Genome region descriptions -> one phrase-caption sample per region (box prompts).

Both releases convert: v1.2 keys a region `region_id` (and `image_id`), v1.0 `id` (and `image`)
(`visual_genome_python_driver` `utils.parse_region_descriptions` reads both). Each region becomes
one sample `vg/regions/{region_id}`: a `box` prompt (VG has no masks, and none is faked) clipped
to the image, a question from `templates.SHORT_DESCRIPTION` and the whitespace-normalised phrase
as the answer (case and punctuation kept). One region per sample keeps ids native and every
region's phrase exactly once; a mixer can group them later. Each region is its own outcome: a
bad region is one reject and the rest of its image still converts.

Rejects: `box_outside_image` (nothing left after clipping, e.g. y = -904), `bad_box`
(coordinates that are not finite numbers), `bad_region_id` (not an integer: `true`, `101.7`,
`"101"`), `bad_record` (a record without integer id or `regions` list, a region that is no
object), and per region of a bad image `image_missing`, `image_empty` (VG ships zero-byte
files), `image_unreadable`, `image_size_mismatch` (image_data.json disagrees with the file).

Units are byte ranges of region_descriptions.json (~700 MB in v1.2), planned in one streaming
pass (`sources.jsonarray`); each carries the image_data entries its images need.

    pixelrefer ingest --source vg --root /data/vg --out build/
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import cache, partial
from pathlib import Path
from typing import Any

from schemas import Reject, Sample, make_id, masks
from sources import fixtures, jsonarray, templates
from sources.base import Adapter, Outcome, Unit, isolated
from sources.common import find_media, image_size, is_int, is_number, normalize_text
from sources.roots import Roots

REGIONS = "region_descriptions.json"
IMAGE_DATA = "image_data.json"
FOLDERS = ("VG_100K", "VG_100K_2")
XYWH = ("x", "y", "width", "height")
_URL_FOLDER = re.compile(r"/(VG_100K(?:_2)?)/[^/]*$")


def _image_id(record: object) -> int | None:
    """The integer image id (releases name it `id` or `image_id`), or None."""
    value = record.get("id", record.get("image_id")) if isinstance(record, dict) else None
    return value if is_int(value) else None


class VgAdapter(Adapter):
    name = "vg"
    version = "2"
    license = "CC-BY-4.0"
    LAYOUT = """\
region_descriptions.json   [{"id" | "image_id": int, "regions": [...]}]   v1.2, or v1.0 (regions keyed id / image)
image_data.json            [{"image_id" | "id": int, "url": ".../VG_100K_2/1.jpg", "width", "height"}]
VG_100K/{image_id}.jpg     images.zip   (here or in a declared media root)
VG_100K_2/{image_id}.jpg   images2.zip  (a merged single folder works too: both are tried)
"""
    unit_bytes = jsonarray.TARGET_BYTES

    def units(self, roots: Roots) -> list[Unit]:
        root = roots.annotations
        for name in (REGIONS, IMAGE_DATA):
            if not (root / name).is_file():
                raise FileNotFoundError(f"{root / name} is missing; expected the Visual Genome tree:\n{self.LAYOUT}")
        images = {}
        for _, _, _, entry in jsonarray.elements(root / IMAGE_DATA):
            if _image_id(entry) is not None:  # others only lose the url hint: both folders are tried
                folder = _URL_FOLDER.search(str(entry.get("url", "")))
                images[_image_id(entry)] = [folder.group(1) if folder else None, entry.get("width"), entry.get("height")]
        units = []
        for span in jsonarray.spans(root / REGIONS, self.unit_bytes, note=_image_id):
            spec = {k: span[k] for k in ("start", "end", "first", "count")}
            spec["images"] = {str(i): images[i] for i in span["notes"] if i in images}
            units.append(Unit(self.name, f"regions-{span['first']:08d}", spec))
        return units

    def inputs(self, roots: Roots, unit: Unit) -> list[Path]:
        return [roots.annotations / REGIONS, roots.annotations / IMAGE_DATA]

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, tuple[Any, list | None]]]:
        """Each image record with its image_data entry `[folder, width, height]` (None if unlisted)."""
        for offset, record in enumerate(jsonarray.read_span(roots.annotations / REGIONS, unit.spec)):
            yield f"{REGIONS}[{unit.spec['first'] + offset}]", (record, unit.spec["images"].get(str(_image_id(record))))

    def outcomes(self, roots: Roots, record: tuple[Any, list | None], locator: str) -> Iterator[Outcome]:
        value, info = record
        image_id = _image_id(value)
        regions = value.get("regions") if isinstance(value, dict) else None
        if image_id is None or not isinstance(regions, list):
            raise Reject("bad_record", "expected {id: int, regions: [...]}", locator)
        # The image is checked once; a bad one raises again for each region (`cache` keeps no
        # exception), so every region of it is a counted reject with its own locator.
        image = cache(partial(_image, roots, image_id, info))
        for j, region in enumerate(regions):
            where = f"{locator}.regions[{j}]"
            yield from isolated(where, self._region_sample, image, image_id, region, where)

    def _region_sample(self, image: Callable[[], tuple[str, int, int]], image_id: int, region: object, locator: str) -> Sample:
        path, width, height = image()
        if not isinstance(region, dict):
            raise Reject("bad_record", f"region is {type(region).__name__}, not an object", locator)
        region_id = region.get("region_id", region.get("id"))  # v1.2 / v1.0
        if not is_int(region_id):
            raise Reject("bad_region_id", f"region id {repr(region_id)[:60]} is not an integer", locator)
        native = [region.get(k) for k in XYWH]
        if not all(is_number(v) for v in native):
            raise Reject("bad_box", f"x, y, width, height {repr(native)[:80]} are not four finite numbers", locator)
        native = [float(v) for v in native]
        box = masks.clip_box(masks.xywh_to_xyxy(native), width, height)
        if box is None:
            raise Reject("box_outside_image", f"x,y,w,h {native} leaves nothing inside {width}x{height}", locator)
        phrase = region.get("phrase")
        phrase = normalize_text(phrase) if isinstance(phrase, str) else ""  # empty: validation rejects it
        question = templates.pick(templates.SHORT_DESCRIPTION, f"{make_id(self.name, 'regions', region_id)}:0")
        return self.sample(
            subset="regions", native_id=region_id, file=REGIONS, locator=locator, task="phrase_caption",
            media={"kind": "image", "path": path, "width": width, "height": height},
            regions=[{"label": phrase, "prompt": "box", "frames": [{"frame": 0, "box": box}]}],
            conversation=[{"role": "user", "text": question.format(obj="<obj0>")}, {"role": "assistant", "text": phrase}],
            meta={"image_id": image_id, "region_id": region_id, "native_xywh": native},
        )

    def write_fixture(self, root: Path) -> None:
        """Images 1 (VG_100K) and 2 (VG_100K_2, known from its url) with drawn boxes; traps:
        negative and out-of-image boxes, image 3 zero bytes, image 4 missing, image 5 under the
        old `image_id` key with a url that names no folder, a record without regions, a string id,
        and image 7 in the v1.0 shape (regions keyed `id` / `image`) with region ids `true` and 703.5."""
        size = {"width": 64, "height": 48}
        fixtures.write_image(root / "VG_100K/1.jpg", 64, 48, [(8, 8, 24, 20)], seed=1)
        fixtures.write_image(root / "VG_100K_2/2.jpg", 64, 48, [(30, 20, 50, 40)], seed=2)
        (root / "VG_100K/3.jpg").write_bytes(b"")
        fixtures.write_image(root / "VG_100K_2/5.jpg", 64, 48, [(0, 0, 10, 10)], seed=5)
        fixtures.write_image(root / "VG_100K/7.jpg", 64, 48, [(8, 8, 24, 20)], seed=7)
        url = "https://cs.stanford.edu/people/rak248/{}/{}.jpg"
        fixtures.write_json(root / IMAGE_DATA, [
            {"image_id": 1, "url": url.format("VG_100K", 1), **size, "coco_id": None, "flickr_id": None},
            {"image_id": 2, "url": url.format("VG_100K_2", 2), **size, "coco_id": -1, "flickr_id": None},
            {"image_id": 3, "url": url.format("VG_100K", 3), **size},
            {"image_id": 4, "url": url.format("VG_100K", 4), **size},
            {"id": 5, "url": "https://example.org/5.jpg", **size},
            {"id": 7, "url": url.format("VG_100K", 7), **size},
        ])

        def box(rid: int, iid: int, phrase: str, x: int, y: int, w: int, h: int) -> dict:
            return {"region_id": rid, "image_id": iid, "phrase": phrase, "x": x, "y": y, "width": w, "height": h}

        def v10(rid: object, phrase: str, x: int, y: int, w: int, h: int) -> dict:
            return {"id": rid, "image": 7, "phrase": phrase, "x": x, "y": y, "width": w, "height": h}

        fixtures.write_json(root / REGIONS, [
            {"id": 1, "regions": [box(101, 1, "the red box ", 8, 8, 16, 12),
                                  box(102, 1, "Green  grass\u0301 at left.", -5, 30, 20, 30),
                                  box(103, 1, "far above", 10, -904, 5, 10)]},
            {"id": 2, "regions": [box(201, 2, "a blue square", 30, 20, 20, 20)]},
            {"id": 3, "regions": [box(301, 3, "nothing to see", 1, 1, 5, 5)]},
            {"id": 4, "regions": [box(401, 4, "lost image", 1, 1, 5, 5)]},
            {"image_id": 5, "regions": [box(501, 5, "corner", 0, 0, 10, 10), {"region_id": 502, "phrase": "no box"}]},
            {"id": 6},
            {"id": "../../etc/passwd", "regions": []},
            {"id": 7, "regions": [v10(701, "a red box", 8, 8, 16, 12), v10(True, "true id", 1, 1, 5, 5),
                                  v10(703.5, "float id", 1, 1, 5, 5), v10(704, "the whole picture", 0, 0, 64, 48)]},
        ])


def _image(roots: Roots, image_id: int, info: list | None) -> tuple[str, int, int]:
    """(relative path, width, height) of an image: the url's folder first, then the other.
    Its rejects carry no locator: `isolated` gives them the region's."""
    folder, width, height = info or (None, None, None)
    path = find_media(roots, [(f, f"{image_id}.jpg") for f in sorted(FOLDERS, key=lambda f: f != folder)], "")
    actual = image_size(roots, path, "")
    if width is not None and [width, height] != list(actual):
        raise Reject("image_size_mismatch", f"{path} is {actual[0]}x{actual[1]}, image_data.json says {width}x{height}")
    return path, *actual
