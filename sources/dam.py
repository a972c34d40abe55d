"""DAM training data (`nvidia/describe-anything-dataset`) -> one detailed-caption sample per region.

The release (the Hugging Face snapshot, unchanged) is `LAYOUT` below: WebDataset tar shards of
`<key>.jpg` + `<key>.pickle` per image. The `.pickle` member is a list of region dicts
`{img_id, ann_id, image, mask_rle{size, counts}, caption}`. It is untrusted: `sources.safe_pickle`
loads it allowing only plain containers, scalars and numeric numpy values, within an opcode
budget, so a pickle naming any other class or callable is an `unsafe_pickle` reject and runs
nothing. Each region becomes `Describe <obj0> in detail.` -> caption on the image, whose media
path names the tar member (`COCOStuff/images/00000000.tar/000000000092.jpg`, read by `sources.media`).

A tar is found through `Roots.media_path`, so one reached by a symlink leading outside the
declared roots is one `path_escapes_root` reject. Members are read with a size cap
(`MEMBER_CAPS`), checked against the tar header before reading, so a member that declares
gigabytes (a sparse one, say) is a `member_too_large` reject, never a read.

Image-level problems are one reject per image (`no_regions` for an empty list, `pickle_missing`,
`image_missing`, `image_unreadable`, `unsafe_pickle`, `pickle_too_large`, `bad_pickle`, and for
its members `path_escapes_root` (an absolute or `..` name), `member_not_file` (a link or device),
`member_too_large`); region-level ones one per region (`bad_region`, `mask_size_mismatch` when
the RLE is not the jpg's size, `object_without_masks`). The per-subset `annotations.json` layout
seen in third-party code is not read: its structure is unverified, and the tar shards carry the
same regions.

    pixelrefer ingest --source dam --root /data/describe-anything-dataset --out build/
"""

from __future__ import annotations

import io
import numbers
import pickle
import tarfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from schemas import Reject, Sample, masks
from sources import fixtures
from sources.base import Adapter, Outcome, Unit, isolated
from sources.common import header_size, mask_region, normalize_text
from sources.roots import Roots
from sources.safe_pickle import safe_loads

QUESTION = "Describe <obj0> in detail."
# Largest member read per extension; other members are never read. A DAM region list is a few
# hundred KB; COCO-sized jpgs are well under 1 MB.
MEMBER_CAPS = {"pickle": 64 << 20, "jpg": 256 << 20}
MAX_PICKLE_OPS = 1_000_000  # opcodes per region list: bounds the objects one pickle can build
Group = dict[str, bytes | Reject | None]  # one WebDataset sample: extension -> bytes, a refusal, or None (unread)


def _member(tar: tarfile.TarFile, member: tarfile.TarInfo, ext: str, locator: str) -> bytes | Reject | None:
    """The bytes of a member DAM uses (None for other extensions), or why it is refused."""
    if member.name.startswith("/") or ".." in member.name.split("/"):
        return Reject("path_escapes_root", f"tar member name {member.name!r} is absolute or climbs with '..'", locator)
    if not member.isfile():
        return Reject("member_not_file", f"tar member {member.name!r} is a link or device, not a file", locator)
    cap = MEMBER_CAPS.get(ext)
    if cap is None:
        return None
    if member.size > cap:
        return Reject("member_too_large", f"tar member {member.name!r} declares {member.size} bytes, over the {cap} cap", locator)
    return tar.extractfile(member).read(member.size)  # never more than the size just checked


def webdataset_samples(tar_path: Path, tar_name: str) -> Iterator[tuple[str, Group]]:
    """(key, {extension: bytes | Reject | None}) per WebDataset sample, in one pass that seeks past
    what it does not read (a member declaring 4 GiB costs a seek, not a 4 GiB read); members of one
    key are adjacent. Raises ValueError naming the shard when it is not a readable tar."""
    key, group = None, {}
    try:
        with tarfile.open(tar_path, "r:") as tar:  # seekable ("r|" would read through every skipped byte)
            for member in tar:
                if member.isdir():
                    continue
                folder, _, name = member.name.rpartition("/")
                stem, _, ext = name.partition(".")  # WebDataset: the key ends at the basename's first dot
                member_key = f"{folder}/{stem}" if folder else stem
                if member_key != key and group:
                    yield key, group
                    group = {}
                key = member_key
                group[ext] = _member(tar, member, ext, f"{tar_name}/{member.name}")
    except tarfile.TarError as err:
        raise ValueError(f"{tar_path}: not a readable tar ({err}); download the shard again") from None
    if group:
        yield key, group


class DamAdapter(Adapter):
    name = "dam"
    version = "2"  # 2: numpy values in pickles load; member name, type and size checks
    license = "NVIDIA-Noncommercial"
    LAYOUT = """\
<Subset>/images/<8-digit>.tar    WebDataset shards: <key>.jpg + <key>.pickle per image
                                 (e.g. COCOStuff/images/00000000.tar)
"""

    def units(self, roots: Roots) -> list[Unit]:
        tars = sorted(str(t.relative_to(roots.annotations)) for t in roots.annotations.glob("*/images/*.tar"))
        if not tars:
            raise FileNotFoundError(f"{roots.annotations}: no <Subset>/images/*.tar shards (expected layout:\n{self.LAYOUT})")
        return [Unit(self.name, tar, {"tar": tar}) for tar in tars]

    def inputs(self, roots: Roots, unit: Unit) -> list[Path]:
        return [roots.annotations / unit.spec["tar"]]  # annotations and images share the tar

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        """`(tar, key, members)` per WebDataset sample; a tar outside the roots is one reject."""
        tar = unit.spec["tar"]
        try:
            path = roots.media_path(tar, tar)
        except Reject as reject:  # the whole shard is unusable, not one of its records
            yield tar, reject
            return
        for key, group in webdataset_samples(path, tar):
            yield f"{tar}/{key}", (tar, key, group)

    def outcomes(self, roots: Roots, record: tuple[str, str, Group], locator: str) -> Iterator[Outcome]:
        """Image-level checks (raising one reject for the image), then one isolated sample per region."""
        tar, key, group = record
        refused = next((value for value in group.values() if isinstance(value, Reject)), None)
        if refused is not None:
            raise refused
        if group.get("pickle") is None:
            raise Reject("pickle_missing", f"{key} has no .pickle member", locator)
        regions = safe_loads(group["pickle"], f"{locator}.pickle", max_ops=MAX_PICKLE_OPS)
        if not isinstance(regions, list):
            raise Reject("bad_pickle", f"expected a list of region dicts, got {type(regions).__name__}", f"{locator}.pickle")
        if not regions:
            raise Reject("no_regions", "the region list is empty", f"{locator}.pickle")
        if group.get("jpg") is None:
            raise Reject("image_missing", f"{key} has no .jpg member", locator)
        width, height = header_size(io.BytesIO(group["jpg"]), f"{key}.jpg", locator)
        for i, region in enumerate(regions):
            where = f"{locator}.pickle[{i}]"
            yield from isolated(where, self._sample, tar, key, i, region, width, height, where)

    def _sample(self, tar: str, key: str, i: int, region: object, width: int, height: int, locator: str) -> Sample:
        if not isinstance(region, dict) or not isinstance(region.get("mask_rle"), dict) or not isinstance(region.get("caption"), str):
            raise Reject("bad_region", "a region needs a mask_rle dict and a caption string", locator)
        return self.sample(
            subset=tar.split("/", 1)[0], native_id=f"{key}_{region.get('ann_id', i)}", file=tar, locator=locator,
            task="detailed_caption", media=dict(kind="image", path=f"{tar}/{key}.jpg", width=width, height=height),
            regions=[mask_region([(0, region["mask_rle"])], height, width, locator)],
            conversation=[dict(role="user", text=QUESTION), dict(role="assistant", text=normalize_text(region["caption"]))],
            # numpy integers (from a pickle made with numpy) become plain ints, as JSON needs
            meta={k: v if isinstance(v, str) else int(v) for k in ("img_id", "ann_id")
                  if isinstance(v := region.get(k), (str, numbers.Integral))},
        )

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
