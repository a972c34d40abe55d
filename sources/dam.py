"""DAM training data (`nvidia/describe-anything-dataset`) -> one detailed-caption sample per region.

Expected tree under `--root` (the Hugging Face snapshot, unchanged):

    <Subset>/images/<8-digit>.tar    WebDataset shards: <key>.jpg + <key>.pickle per image

The `.pickle` member is a list of region dicts `{img_id, ann_id, image, mask_rle{size, counts},
caption}`. It is untrusted: `sources.safe_pickle` loads it allowing only plain containers and
scalars, so a pickle naming any class or callable is an `unsafe_pickle` reject and runs nothing.
Each region becomes `Describe <obj0> in detail.` -> caption on the image, whose media path names
the tar member (`COCOStuff/images/00000000.tar/000000000092.jpg`, read by `sources.media`).

Image-level problems are one reject per image (`no_regions` for an empty list, `pickle_missing`,
`image_missing`, `image_unreadable`, `unsafe_pickle`, `bad_pickle`); region-level ones one per
region (`bad_region`, `mask_size_mismatch` when the RLE is not the jpg's size, `object_without_masks`).
The per-subset `annotations.json` layout seen in third-party code is not read: its structure is
unverified, and the tar shards carry the same regions.

    pixelrefer ingest --source dam --root /data/describe-anything-dataset --out build/
"""

from __future__ import annotations

import io
import pickle
import tarfile
import textwrap
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from schemas import Provenance, Reject, Sample, make_id, masks, validate
from sources import fixtures
from sources.base import Adapter, Outcome, Unit
from sources.common import mask_region, normalize_text, outcome
from sources.safe_pickle import safe_loads

QUESTION = "Describe <obj0> in detail."


def webdataset_samples(tar_path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) per WebDataset sample, streaming; members of one key are adjacent.

    Raises ValueError naming the shard when it is not a readable tar (a truncated download, say).
    """
    key, group = None, {}
    try:
        with tarfile.open(tar_path, "r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                folder, _, name = member.name.rpartition("/")
                stem, _, ext = name.partition(".")  # WebDataset: the key ends at the basename's first dot
                member_key = f"{folder}/{stem}" if folder else stem
                if member_key != key and group:
                    yield key, group
                    group = {}
                key = member_key
                group[ext] = tar.extractfile(member).read()
    except tarfile.TarError as err:
        raise ValueError(f"{tar_path}: not a readable tar ({err}); download the shard again") from None
    if group:
        yield key, group


class DamAdapter(Adapter):
    name = "dam"
    version = "1"
    license = "NVIDIA-Noncommercial"
    layout = textwrap.dedent(__doc__.split("\n\n")[2])  # the tree in the docstring above

    def units(self, root: Path) -> list[Unit]:
        tars = sorted(root.glob("*/images/*.tar"))
        if not tars:
            raise FileNotFoundError(f"{root}: no <Subset>/images/*.tar shards (expected {self.layout})")
        return [Unit(self.name, str(t.relative_to(root)), {"tar": str(t.relative_to(root))}) for t in tars]

    def convert(self, root: Path, unit: Unit) -> Iterator[Outcome]:
        tar = unit.spec["tar"]
        for key, group in webdataset_samples(root / tar):
            image = outcome(self._image, key, group, tar)
            if isinstance(image, Reject):
                yield image
                continue
            regions, width, height = image
            for i, region in enumerate(regions):
                yield outcome(self._sample, tar, key, i, region, width, height, f"{tar}/{key}.pickle[{i}]")

    @staticmethod
    def _image(key: str, group: dict[str, bytes], tar: str) -> tuple[list, int, int]:
        """The region list and image size of one WebDataset sample, or an image-level reject."""
        locator = f"{tar}/{key}"
        if "pickle" not in group:
            raise Reject("pickle_missing", f"{key} has no .pickle member", locator)
        regions = safe_loads(group["pickle"], f"{locator}.pickle")
        if not isinstance(regions, list):
            raise Reject("bad_pickle", f"expected a list of region dicts, got {type(regions).__name__}", f"{locator}.pickle")
        if not regions:
            raise Reject("no_regions", "the region list is empty", f"{locator}.pickle")
        if "jpg" not in group:
            raise Reject("image_missing", f"{key} has no .jpg member", locator)
        try:
            with Image.open(io.BytesIO(group["jpg"])) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError) as err:
            raise Reject("image_unreadable", f"{key}.jpg: {err}", locator) from None
        return regions, width, height

    def _sample(self, tar: str, key: str, i: int, region: object, width: int, height: int, locator: str) -> Sample:
        if not isinstance(region, dict) or not isinstance(region.get("mask_rle"), dict) or not isinstance(region.get("caption"), str):
            raise Reject("bad_region", "a region needs a mask_rle dict and a caption string", locator)
        subset = tar.split("/", 1)[0]
        sample = dict(
            id=make_id(self.name, subset, f"{key}_{region.get('ann_id', i)}"), source=self.name, subset=subset,
            split="train", license=self.license, task="detailed_caption",
            media=dict(kind="image", path=f"{tar}/{key}.jpg", width=width, height=height),
            regions=[mask_region([(0, region["mask_rle"])], height, width, locator)],
            conversation=[dict(role="user", text=QUESTION), dict(role="assistant", text=normalize_text(region["caption"]))],
            meta={k: region[k] for k in ("img_id", "ann_id") if isinstance(region.get(k), (str, int))},
            provenance=Provenance(file=tar, locator=locator, adapter=self.name, adapter_version=self.version),
        )
        return validate(sample, locator)

    def write_fixture(self, root: Path) -> None:
        write_fixture(root)


# ---- fixture: one COCOStuff shard of 40x30 images, with the traps ----

FIXTURE_SIZE = (40, 30)
FIXTURE_RECTS = [(4, 4, 14, 12), (20, 10, 36, 26)]
# A protocol-0 pickle whose load would call builtins.open("DAM_PWNED", "w"): it must never run.
MALICIOUS_PICKLE = b"cbuiltins\nopen\n(VDAM_PWNED\nVw\ntR."


def _region(ann_id: int, rect: fixtures.Rect, caption: str, size: tuple[int, int] = FIXTURE_SIZE) -> dict:
    width, height = size
    return {"img_id": "000000000001", "ann_id": ann_id, "image": "000000000001.jpg",
            "mask_rle": masks.encode(fixtures.rect_mask(width, height, rect)), "caption": caption}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_fixture(root: Path) -> None:
    """COCOStuff/images/00000000.tar: a two-region image, then empty-list, size-mismatch,
    malicious, class-instance and image-less samples."""
    width, height = FIXTURE_SIZE
    frame = io.BytesIO()
    Image.fromarray(fixtures.draw(width, height, FIXTURE_RECTS)).save(frame, format="JPEG", quality=90)
    jpg = frame.getvalue()
    good = [_region(7, FIXTURE_RECTS[0], "A red rectangle with crisp edges \u2014 flat and matte. "),
            _region(8, FIXTURE_RECTS[1], "A green panel in the lower right.")]
    samples = [
        ("000000000001", jpg, pickle.dumps(good, protocol=4)),
        ("000000000002", jpg, pickle.dumps([], protocol=4)),
        ("000000000003", jpg, pickle.dumps([_region(9, (0, 0, 5, 5), "Too small a mask.", size=(20, 20))], protocol=4)),
        ("000000000004", jpg, MALICIOUS_PICKLE),
        ("000000000005", jpg, pickle.dumps([OrderedDict(caption="not a plain dict")], protocol=4)),
        ("000000000006", None, pickle.dumps(good[:1], protocol=4)),
    ]
    path = root / "COCOStuff/images/00000000.tar"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, image, data in samples:
            if image is not None:
                _add(tar, f"{key}.jpg", image)
            _add(tar, f"{key}.pickle", data)
