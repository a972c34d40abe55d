"""Visual Genome region descriptions -> one phrase-caption sample per region (box prompts).

Expected tree under --root (the official release, unzipped as is):

    region_descriptions.json   [{"id" | "image_id": int, "regions": [{region_id, phrase, x, y, width, height}]}]
    image_data.json            [{"image_id" | "id": int, "url": ".../VG_100K_2/1.jpg", "width", "height"}]
    VG_100K/{image_id}.jpg     images.zip
    VG_100K_2/{image_id}.jpg   images2.zip (a merged single folder works too: both are tried)

Each region becomes one sample `vg/regions/{region_id}`: a `box` prompt (VG has no masks, and
none is faked) clipped to the image, a question from `templates.SHORT_DESCRIPTION` and the
whitespace-normalised phrase as the answer (case and punctuation kept). One region per sample
keeps ids native and every region's phrase exactly once; a mixer can group them later.

Rejects: `box_outside_image` (nothing left after clipping, e.g. y = -904), `bad_box`,
`bad_record`, and per region of a bad image `image_missing`, `image_empty` (VG ships zero-byte
files), `image_unreadable`, `image_size_mismatch` (image_data.json disagrees with the file).

Units are byte ranges of region_descriptions.json (~700 MB in v1.2), planned in one streaming
pass (`sources.jsonarray`); each carries the image_data entries its images need.

    pixelrefer ingest --source vg --root /data/vg --out build/
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

from schemas import Reject, make_id, masks, validate
from sources import fixtures, jsonarray, templates
from sources.base import Adapter, Outcome, Unit
from sources.common import image_size, normalize_text

REGIONS = "region_descriptions.json"
IMAGE_DATA = "image_data.json"
FOLDERS = ("VG_100K", "VG_100K_2")
_URL_FOLDER = re.compile(r"/(VG_100K(?:_2)?)/[^/]*$")


def _image_id(record: object) -> int | None:
    """The integer image id (releases name it `id` or `image_id`), or None."""
    value = record.get("id", record.get("image_id")) if isinstance(record, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class VgAdapter(Adapter):
    name = "vg"
    version = "1"
    license = "CC-BY-4.0"
    layout = textwrap.dedent(__doc__.split("\n\n")[2])  # the tree in the module docstring
    unit_bytes = jsonarray.TARGET_BYTES

    def units(self, root: Path) -> list[Unit]:
        for name in (REGIONS, IMAGE_DATA):
            if not (root / name).is_file():
                raise FileNotFoundError(f"{root / name} is missing; expected the Visual Genome tree: {self.layout}")
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

    def convert(self, root: Path, unit: Unit) -> Iterator[Outcome]:
        for offset, record in enumerate(jsonarray.read_span(root / REGIONS, unit.spec)):
            locator = f"{REGIONS}[{unit.spec['first'] + offset}]"
            image_id = _image_id(record)
            regions = record.get("regions") if isinstance(record, dict) else None
            if image_id is None or not isinstance(regions, list):
                yield Reject("bad_record", "expected {id: int, regions: [...]}", locator)
                continue
            try:
                image = _image(root, image_id, unit.spec["images"].get(str(image_id)), locator)
            except Reject as bad_image:
                image = bad_image
            for j, region in enumerate(regions):
                where = f"{locator}.regions[{j}]"
                if isinstance(image, Reject):  # every region of a bad image is a counted reject
                    yield Reject(image.reason, image.message, where)
                    continue
                try:
                    yield self._sample(image_id, image, region, where)
                except Reject as reject:
                    yield reject

    def _sample(self, image_id: int, image: tuple[str, int, int], region: object, locator: str) -> Outcome:
        path, width, height = image
        try:
            native = [float(region[k]) for k in ("x", "y", "width", "height")]  # type: ignore[index]
            region_id = int(region["region_id"])  # type: ignore[index]
        except (KeyError, TypeError, ValueError):
            raise Reject("bad_box", "a region needs numeric region_id, x, y, width, height", locator) from None
        box = masks.clip_box(masks.xywh_to_xyxy(native), width, height)
        if box is None:
            raise Reject("box_outside_image", f"x,y,w,h {native} leaves nothing inside {width}x{height}", locator)
        phrase = region.get("phrase")  # type: ignore[union-attr]
        phrase = normalize_text(phrase) if isinstance(phrase, str) else ""  # empty: validate rejects it
        sample_id = make_id(self.name, "regions", region_id)
        question = templates.pick(templates.SHORT_DESCRIPTION, f"{sample_id}:0").format(obj="<obj0>")
        return validate({
            "id": sample_id, "source": self.name, "subset": "regions", "split": "train",
            "license": self.license, "task": "phrase_caption",
            "media": {"kind": "image", "path": path, "width": width, "height": height},
            "regions": [{"label": phrase, "prompt": "box", "frames": [{"frame": 0, "box": box}]}],
            "conversation": [{"role": "user", "text": question}, {"role": "assistant", "text": phrase}],
            "meta": {"image_id": image_id, "region_id": region_id, "native_xywh": native},
            "provenance": {"file": REGIONS, "locator": locator, "adapter": self.name, "adapter_version": self.version},
        }, locator)

    def write_fixture(self, root: Path) -> None:
        """Images 1 (VG_100K) and 2 (VG_100K_2, known from its url) with drawn boxes; traps:
        negative and out-of-image boxes, image 3 zero bytes, image 4 missing, image 5 under the
        old `image_id` key with a url that names no folder, a record without regions, a string id."""
        size = {"width": 64, "height": 48}
        fixtures.write_image(root / "VG_100K/1.jpg", 64, 48, [(8, 8, 24, 20)], seed=1)
        fixtures.write_image(root / "VG_100K_2/2.jpg", 64, 48, [(30, 20, 50, 40)], seed=2)
        (root / "VG_100K/3.jpg").write_bytes(b"")
        fixtures.write_image(root / "VG_100K_2/5.jpg", 64, 48, [(0, 0, 10, 10)], seed=5)
        url = "https://cs.stanford.edu/people/rak248/{}/{}.jpg"
        fixtures.write_json(root / IMAGE_DATA, [
            {"image_id": 1, "url": url.format("VG_100K", 1), **size, "coco_id": None, "flickr_id": None},
            {"image_id": 2, "url": url.format("VG_100K_2", 2), **size, "coco_id": -1, "flickr_id": None},
            {"image_id": 3, "url": url.format("VG_100K", 3), **size},
            {"image_id": 4, "url": url.format("VG_100K", 4), **size},
            {"id": 5, "url": "https://example.org/5.jpg", **size},
        ])

        def box(rid: int, iid: int, phrase: str, x: int, y: int, w: int, h: int) -> dict:
            return {"region_id": rid, "image_id": iid, "phrase": phrase, "x": x, "y": y, "width": w, "height": h}

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
        ])


def _image(root: Path, image_id: int, info: list | None, locator: str) -> tuple[str, int, int]:
    """(relative path, width, height) of an image: the url's folder first, then the others."""
    folder, width, height = info or (None, None, None)
    candidates = [f"{f}/{image_id}.jpg" for f in sorted(FOLDERS, key=lambda f: f != folder)]
    path = next((c for c in candidates if (root / c).exists()), candidates[0])
    actual = image_size(root, path, locator)
    if width is not None and [width, height] != list(actual):
        raise Reject("image_size_mismatch", f"{path} is {actual[0]}x{actual[1]}, image_data.json says {width}x{height}", locator)
    return path, *actual
