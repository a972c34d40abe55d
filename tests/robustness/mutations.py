"""The mutation catalogue of the bad-input suite (`tests/robustness/test_bad_inputs.py`).

Each `Case` names its class, its source and a `mutate(root)` that damages a freshly written copy
of that source's own fixture (`adapter.write_fixture(root)`) in place; the rest of the case is the
exact expected outcome, relative to the unmutated fixture's outcomes:

* `rejects`: the rejects the mutation adds, `(reason, locator)`, exactly (a multiset);
* `removed`: baseline rejects that no longer occur (the mutated record was already a trap);
* `touched`: baseline sample ids the mutation removes; every other sample must still convert;
* `error`: `(unit, prefix)` for a file-level error, a one-line message starting with `prefix`
  (`<root>` stands for the fixture root): `unit` None when `units()` raises (the whole source
  stops), else the unit whose file is unreadable (its baseline outcomes are not expected).

Mutations read the fixture writers' own files (see each adapter's `write_fixture`).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import scipy.io as sio
from PIL import Image

SUR = "\ud800"  # a lone surrogate: valid as a JSON escape, not encodable as UTF-8
LONG_NAME = "x" * 5000 + ".jpg"  # far over NAME_MAX (255)
DEEP = "[" * 200_000 + "]" * 200_000
BIG_INT = 10**30
HUGE_DIGITS = "9" * 5000  # over Python's 4300-digit int-from-string limit


@dataclass(frozen=True)
class Case:
    cls: str
    source: str
    name: str
    mutate: Callable[[Path], None]
    rejects: tuple[tuple[str, str], ...] = ()
    removed: tuple[tuple[str, str], ...] = ()
    touched: tuple[str, ...] = ()
    error: tuple[str | None, str] | None = None

    @property
    def id(self) -> str:
        return f"{self.source}-{self.cls}-{self.name}"


# ---------------------------------------------------------------- file helpers

def load(root: Path, rel: str) -> Any:
    return json.loads((root / rel).read_text(encoding="utf-8"))


def dump(root: Path, rel: str, value: Any) -> None:
    """ASCII JSON (a lone surrogate becomes a valid `\\ud800` escape), NaN allowed."""
    (root / rel).write_text(json.dumps(value, indent=1), encoding="ascii")


def edit(rel: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
    """A mutation that loads the JSON file `rel`, applies `change` (in place, or returning the new value)."""
    def mutate(root: Path) -> None:
        data = load(root, rel)
        new = change(data)
        dump(root, rel, data if new is None else new)
    return mutate


def raw(rel: str, change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        (root / rel).write_bytes(change((root / rel).read_bytes()))
    return mutate


def line(rel: str, index: int, text: str | bytes) -> Callable[[Path], None]:
    """Replace line `index` of a JSONL file by `text`."""
    def mutate(root: Path) -> None:
        lines = (root / rel).read_bytes().split(b"\n")
        lines[index] = text if isinstance(text, bytes) else text.encode("utf-8")
        (root / rel).write_bytes(b"\n".join(lines))
    return mutate


def edit_line(rel: str, index: int, change: Callable[[dict], Any]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        lines = (root / rel).read_bytes().split(b"\n")
        record = json.loads(lines[index])
        new = change(record)
        lines[index] = json.dumps(record if new is None else new).encode("ascii")
        (root / rel).write_bytes(b"\n".join(lines))
    return mutate


def setter(*path: Any, value: Any) -> Callable[[Any], None]:
    """`data[p0][p1]...[pn] = value`."""
    def change(data: Any) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value
    return change


def deleter(*path: Any) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        for key in path[:-1]:
            data = data[key]
        del data[path[-1]]
    return change


def ann(data: dict, ann_id: int) -> dict:
    return next(a for a in data["annotations"] if a["id"] == ann_id)


def set_ann(ann_id: int, key: str, value: Any) -> Callable[[Any], None]:
    return lambda data: ann(data, ann_id).__setitem__(key, value)


def both(*mutations: Callable[[Path], None]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        for m in mutations:
            m(root)
    return mutate


def bomb_png() -> bytes:
    """A ~100-byte PNG whose header declares 30000x30000 (its IDAT is truncated)."""
    buffer = io.BytesIO()
    Image.new("L", (64, 64)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = (30000).to_bytes(4, "big") + (30000).to_bytes(4, "big")  # IHDR width, height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # keep the IHDR CRC valid
    idat = data.index(b"IDAT")
    return bytes(data[: idat + 20])


def put_file(rel: str, data: bytes) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        (root / rel).unlink(missing_ok=True)
        (root / rel).write_bytes(data)
    return mutate


def truncate_file(rel: str, size: int) -> Callable[[Path], None]:
    return raw(rel, lambda b: b[:size])


def symlink_out(rel: str) -> Callable[[Path], None]:
    """Move `rel` beside the root (`../outside/`) and leave a symlink to it in its place."""
    def mutate(root: Path) -> None:
        target = root.parent / "outside" / Path(rel).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(root / rel), target)
        (root / rel).symlink_to(target)
    return mutate


# pickles
BYTEARRAY_BOMB = b"\x80\x02cbuiltins\nbytearray\n\x8a\x05" + (8_000_000_000).to_bytes(5, "little") + b"\x85R."
BINBYTES8_BOMB = b"\x80\x04\x8e" + (8_000_000_000).to_bytes(8, "little") + b"."  # 12 bytes claiming 8 GB
OS_SYSTEM = b"cos\nsystem\n(S'touch PWNED_BY_PICKLE'\ntR."


def refs_edit(rel: str, change: Callable[[list], Any]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        refs = pickle.loads((root / rel).read_bytes())
        new = change(refs)
        (root / rel).write_bytes(pickle.dumps(refs if new is None else new, protocol=2))
    return mutate


DAM_TAR = "COCOStuff/images/00000000.tar"


def tar_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")


def write_tar(path: Path, members: list[tuple[str, bytes | int]]) -> None:
    """A tar of `(name, data)`; an int for data declares that many (sparse, zero) bytes."""
    with open(path, "wb") as f:
        for name, data in members:
            size = data if isinstance(data, int) else len(data)
            f.write(_header(name, size))
            if isinstance(data, int):
                f.seek(size, os.SEEK_CUR)
                f.truncate(f.tell())  # sparse: no disk blocks for the declared bytes
            else:
                f.write(data)
            f.write(b"\0" * (-size % 512))
        f.write(b"\0" * 1024)


def dam_edit(change: Callable[[list[tuple[str, bytes | int]]], Any]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        members = tar_members(root / DAM_TAR)
        new = change(members)
        write_tar(root / DAM_TAR, members if new is None else new)
    return mutate


def dam_append(*extra: tuple[str, bytes | int]) -> Callable[[Path], None]:
    return dam_edit(lambda members: members + list(extra))


def dam_good_regions(root_members: list[tuple[str, bytes]]) -> list[dict]:
    return pickle.loads(dict(root_members)["000000000001.pickle"])


def dam_replace_first(change: Callable[[list[dict]], Any]) -> Callable[[Path], None]:
    """Rewrite sample 000000000001's region list (two good regions, ann_id 7 and 8)."""
    def members(items: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        regions = dam_good_regions(items)
        new = change(regions)
        data = pickle.dumps(regions if new is None else new, protocol=4)
        return [(n, data if n == "000000000001.pickle" else d) for n, d in items]
    return dam_edit(members)


def dam_extra_sample(key: str, pickle_bytes: bytes | None = None, jpg: bytes | None = None) -> Callable[[Path], None]:
    """Append a sample `key` (jpg first, as WebDataset writes) to the DAM shard."""
    def mutate(root: Path) -> None:
        members = tar_members(root / DAM_TAR)
        good = dict(members)
        extra = [(f"{key}.jpg", good["000000000001.jpg"] if jpg is None else jpg),
                 (f"{key}.pickle", good["000000000001.pickle"] if pickle_bytes is None else pickle_bytes)]
        write_tar(root / DAM_TAR, members + extra)
    return mutate


# ---------------------------------------------------------------- per-source constants

LVIS_VAL = "lvis_v1_val.json"
PACO_VAL = "annotations/paco_lvis_v1_val.json"
OSPREY_CONV = "osprey_conversation.json"
OSPREY_DETAIL = "osprey_detail_description.json"
MDVP_POINT = "stage_2_fine-tuning/MDVP-Data/detailed_caption/gpt4v_vg_detailed_caption_point.json"
MDVP_BOX = "stage_2_fine-tuning/MDVP-Data/QA/gpt4v_coco_qa_box.json"
VR_DET = "videorefer-detailed-caption-125k.json"
VR_QA = "videorefer-qa-75k.json"
VR_SHORT = "videorefer-short-caption-500k.json"
VR_JSONL = "pixelrefer-qa.jsonl"
REL_IMG = "PixelRefer_stage1_trainingdata.json"
REL_LITE = "PixelRefer-Lite_stage1_trainingdata.json"
HC_V2 = "anno_v2/train_v2.json"
HC_V1 = "anno_v1/train.json"
PIN_TRAIN = "annotations/train.json"
PIN_VAL = "annotations/val.json"
LLAVA_IMG = "onevision/sharegpt4v_coco.json"
LLAVA_TXT = "onevision/magpie_pro_text.jsonl"
LLAVA_VID = "0_30_s_academic_v0_1/0_30_s_academic_oe_v0_1_qa_processed.json"
VG_REGIONS = "region_descriptions.json"
VG_IMAGES = "image_data.json"
MEVIS_META = "train/meta_expressions.json"
MEVIS_MASKS = "train/mask_dict.json"
REFCOCO = "refcoco/refs(unc).p"
REFCOCOPLUS = "refcoco+/refs(unc).p"
VCR_SHOT_A = "vcr1images/1054_Harry_Potter/shot_a@0"
PASCAL = "Annotations_Part"

RING = [4.0, 4.0, 24.0, 4.0, 24.0, 20.0, 4.0, 20.0]


def ring_with(index: int, value: Any) -> list[list[Any]]:
    ring: list[Any] = list(RING)
    ring[index] = value
    return [ring]


def osprey_poly(record: int, ring: list) -> Callable[[Any], None]:
    return setter(record, "annotation", 0, "segmentation", value=ring)


def pascal_mat_without_objects(root: Path) -> None:
    sio.savemat(str(root / PASCAL / "2008_000004.mat"), {"anno": {"imname": "2008_000004"}})


def mkv_clip(root: Path) -> None:
    """det_0 of VideoRefer re-pointed at a Matroska copy of its clip (no frame count in the header)
    and annotated on frame 7 of the 3-frame clip."""
    with av.open(str(root / "videos/clip_b.mp4")) as src, av.open(str(root / "videos/clip_b.mkv"), "w", format="matroska") as dst:
        video = src.streams.video[0]
        stream = dst.add_stream_from_template(video)
        for packet in src.demux(video):
            if packet.dts is not None:  # the demuxer's final flush packet
                packet.stream = stream
                dst.mux(packet)
    data = load(root, VR_DET)
    data[0]["video"] = "videos/clip_b.mkv"
    data[0]["annotation"][0]["7"] = data[0]["annotation"][0].pop("2")
    dump(root, VR_DET, data)


def C(cls: str, source: str, name: str, mutate: Callable[[Path], None], rejects=(), removed=(), touched=(), error=None) -> None:
    CASES.append(Case(cls, source, name, mutate, tuple(map(tuple, rejects)), tuple(map(tuple, removed)), tuple(touched), error))


CASES: list[Case] = []

# -- polygon coordinates: non-numeric, null, bool, NaN
C("polygon_coordinate_type", "lvis", "string", edit(LVIS_VAL, set_ann(10, "segmentation", ring_with(0, "4"))),
  rejects=[('bad_mask', 'lvis_v1_val.json:annotations[id=10]')])
C("polygon_coordinate_type", "osprey", "null", edit(OSPREY_CONV, osprey_poly(0, ring_with(3, None))),
  rejects=[('bad_mask', 'osprey_conversation.json[0]')], touched=['osprey/conversation/0'])
C("polygon_coordinate_type", "paco", "bool", edit(PACO_VAL, set_ann(7, "segmentation", ring_with(1, True))),
  rejects=[('bad_mask', 'annotations/paco_lvis_v1_val.json:annotations[id=7]')])
C("polygon_coordinate_type", "partimagenet", "nan", edit(PIN_TRAIN, set_ann(1, "segmentation", ring_with(2, float("nan")))),
  rejects=[('bad_mask', 'annotations/train.json:annotations[id=1]')])
C("polygon_coordinate_type", "vcr", "nan", edit(VCR_SHOT_A + ".json", setter("segms", 0, 0, 0, value=[float("nan"), 8])),
  rejects=[('bad_mask', 'train.jsonl[0] object 0')], touched=['vcr/train/train-0'])
C("polygon_coordinate_type", "pixelrefer-release", "string", edit(REL_IMG, setter(1, "masks", 0, value=ring_with(0, "x"))),
  rejects=[('bad_mask', 'PixelRefer_stage1_trainingdata.json[1] object 0 frame 0')], touched=['pixelrefer-release/pixelrefer-stage1/1'])
# -- coordinates far outside the frame
C("polygon_far_outside", "lvis", "1e12", edit(LVIS_VAL, set_ann(10, "segmentation", ring_with(2, 1e12))),
  rejects=[('bad_mask', 'lvis_v1_val.json:annotations[id=10]')])
C("polygon_far_outside", "lvis", "3e7", edit(LVIS_VAL, set_ann(10, "segmentation", ring_with(4, 3e7))),
  rejects=[('bad_mask', 'lvis_v1_val.json:annotations[id=10]')])
C("polygon_far_outside", "osprey", "1e12", edit(OSPREY_CONV, osprey_poly(0, ring_with(5, -1e12))),
  rejects=[('bad_mask', 'osprey_conversation.json[0]')], touched=['osprey/conversation/0'])
C("polygon_far_outside", "partimagenet", "3e7", edit(PIN_TRAIN, set_ann(1, "segmentation", ring_with(2, 3e7))),
  rejects=[('bad_mask', 'annotations/train.json:annotations[id=1]')])
C("polygon_far_outside", "vcr", "1e12", edit(VCR_SHOT_A + ".json", setter("segms", 0, 0, 1, value=[1e12, 1e12])),
  rejects=[('bad_mask', 'train.jsonl[0] object 0')], touched=['vcr/train/train-0'])
C("polygon_far_outside", "pixelrefer-release", "3e7", edit(REL_IMG, setter(1, "masks", 0, value=ring_with(2, 3e7))),
  rejects=[('bad_mask', 'PixelRefer_stage1_trainingdata.json[1] object 0 frame 0')], touched=['pixelrefer-release/pixelrefer-stage1/1'])
# -- RLE size / counts of the wrong type, negative, not summing
C("rle_malformed", "paco", "counts_dict", edit(PACO_VAL, lambda d: ann(d, 8)["segmentation"].__setitem__("counts", {"a": 1})),
  rejects=[('bad_mask', 'annotations/paco_lvis_v1_val.json:annotations[id=8]')])
C("rle_malformed", "paco", "size_negative", edit(PACO_VAL, lambda d: ann(d, 8)["segmentation"].__setitem__("size", [-48, 64])),
  rejects=[('bad_mask', 'annotations/paco_lvis_v1_val.json:annotations[id=8]')])
C("rle_malformed", "paco", "counts_not_summing", edit(PACO_VAL, lambda d: ann(d, 8)["segmentation"].__setitem__("counts", [1, 2, 3])),
  rejects=[('bad_mask', 'annotations/paco_lvis_v1_val.json:annotations[id=8]')])
C("rle_malformed", "paco", "size_strings", edit(PACO_VAL, lambda d: ann(d, 8)["segmentation"].__setitem__("size", ["48", "64"])),
  rejects=[('bad_mask', 'annotations/paco_lvis_v1_val.json:annotations[id=8]')])
C("rle_malformed", "osprey", "counts_garbage", edit(OSPREY_CONV, setter(0, "annotation", 1, "segmentation", "counts", value="!!!!~~~~")),
  rejects=[('bad_mask', 'osprey_conversation.json[0]')], touched=['osprey/conversation/0'])
C("rle_malformed", "osprey", "counts_null", edit(OSPREY_CONV, setter(0, "annotation", 1, "segmentation", "counts", value=None)),
  rejects=[('bad_mask', 'osprey_conversation.json[0]')], touched=['osprey/conversation/0'])
C("rle_malformed", "mevis", "size_string", edit(MEVIS_MASKS, setter("10", 0, "size", value="24x32")),
  rejects=[('bad_mask', 'train/meta_expressions.json videos.vid_a.expressions.0 anno_id 10 frame 0'), ('bad_mask', 'train/meta_expressions.json videos.vid_a.expressions.1 anno_id 10 frame 0')], touched=['mevis/train/vid_a_0', 'mevis/train/vid_a_1'])
C("rle_malformed", "videorefer", "size_float", edit(VR_DET, setter(0, "annotation", 0, "0", "segmentation", "size", value=[24.5, 32])),
  rejects=[('bad_mask', 'videorefer-detailed-caption-125k.json[0] object 0 frame 0')], touched=['videorefer/detailed-caption/det_0'])
C("rle_malformed", "pixelrefer-release", "counts_negative", edit(REL_IMG, lambda d: d[2]["masks"][0].__setitem__("counts", [-5, 5 + 24 * 32])),
  rejects=[('bad_mask', 'PixelRefer_stage1_trainingdata.json[2] object 0 frame 0')], touched=['pixelrefer-release/pixelrefer-stage1/2'])
C("rle_malformed", "dam", "size_strings", dam_replace_first(lambda regions: regions[0]["mask_rle"].__setitem__("size", ["30", "40"])),
  rejects=[('bad_mask', 'COCOStuff/images/00000000.tar/000000000001.pickle[0] frame 0')], touched=['dam/COCOStuff/000000000001_7'])
# -- lone surrogates in text and in paths
C("lone_surrogate_text", "osprey", "conversation", edit(OSPREY_CONV, setter(0, "conversations", 1, "value", value="Red " + SUR)),
  rejects=[('invalid_text', 'osprey_conversation.json[0]')], touched=['osprey/conversation/0'])
C("lone_surrogate_text", "vg", "phrase", edit(VG_REGIONS, setter(0, "regions", 0, "phrase", value="red \udc80 box")),
  rejects=[('invalid_text', 'region_descriptions.json[0].regions[0]')], touched=['vg/regions/101'])
C("lone_surrogate_text", "refcoco", "sentence", refs_edit(REFCOCOPLUS, setter(0, "sentences", 0, "sent", value="man " + SUR)),
  rejects=[('invalid_text', 'refcoco+/refs(unc).p:refs[ref_id=5].sentences[0]')], touched=['refcoco/refcocoplus_unc/5_51'])
C("lone_surrogate_text", "llava", "jsonl", edit_line(LLAVA_TXT, 1, setter("conversations", 1, "value", value="Blue" + SUR)),
  rejects=[('invalid_text', 'onevision/magpie_pro_text.jsonl[1]')], touched=['llava/magpie_pro_text/1'])
C("lone_surrogate_text", "mevis", "expression", edit(MEVIS_META, setter("videos", "vid_a", "expressions", "0", "exp", value="the " + SUR)),
  rejects=[('invalid_text', 'train/meta_expressions.json videos.vid_a.expressions.0')], touched=['mevis/train/vid_a_0'])
C("lone_surrogate_text", "hcstvg", "caption", edit(HC_V1, setter("10_clip_a.mp4", "caption", value="The woman " + SUR)),
  rejects=[('invalid_text', 'anno_v1/train.json[10_clip_a.mp4]')], touched=['hcstvg/v1_train/10_clip_a'])
C("lone_surrogate_path", "osprey", "file_name", edit(OSPREY_CONV, setter(0, "file_name", value=SUR + ".jpg")),
  rejects=[('bad_path', 'osprey_conversation.json[0]')], touched=['osprey/conversation/0'])
C("lone_surrogate_path", "mdvp", "image", edit(MDVP_BOX, setter(0, "image", value="coco/" + SUR + ".jpg")),
  rejects=[('bad_path', 'stage_2_fine-tuning/MDVP-Data/QA/gpt4v_coco_qa_box.json[0]')], touched=['mdvp/QA:gpt4v_coco_qa_box/0'])
C("lone_surrogate_path", "hcstvg", "video_key", edit(HC_V2, lambda d: {**d, SUR + ".mp4": d["51_missing.mp4"]}),
  rejects=[('bad_path', 'anno_v2/train_v2.json[' + SUR + '.mp4]')])
# -- invalid UTF-8 inside a JSON file
C("invalid_utf8", "vg", "array_file", raw(VG_REGIONS, lambda b: b.replace(b"the red box", b"the r\xffd box")),
  error=(None, 'JsonFileError: <root>/region_descriptions.json: invalid UTF-8 at byte 97'))
C("invalid_utf8", "lvis", "coco_file", raw(LVIS_VAL, lambda b: b.replace(b"trash_can", b"trash\xc3_can", 1)),
  error=(None, 'JsonFileError: <root>/lvis_v1_val.json: invalid UTF-8 at byte 132'))
C("invalid_utf8", "vcr", "jsonl_line", raw("train.jsonl", lambda b: b.replace(b"Nobody", b"Nob\xfedy", 1)),
  rejects=[('bad_json', 'train.jsonl[4]')], removed=[('metadata_missing', 'train.jsonl[4]')])
C("invalid_utf8", "mevis", "meta", raw(MEVIS_META, lambda b: b.replace(b"blinking", b"blink\x80ng")),
  error=(None, 'JsonFileError: <root>/train/meta_expressions.json: invalid UTF-8 at byte 291'))
# -- truncated JSON
C("truncated_json", "osprey", "array", raw(OSPREY_CONV, lambda b: b[: len(b) // 2]),
  error=(None, 'JsonFileError: <root>/osprey_conversation.json: truncated JSON at byte 1586'))
C("truncated_json", "paco", "coco", raw(PACO_VAL, lambda b: b[:300]),
  error=(None, 'JsonFileError: <root>/annotations/paco_lvis_v1_val.json: truncated JSON at byte 300'))
C("truncated_json", "videorefer", "array", raw(VR_QA, lambda b: b[:-40]),
  error=(None, 'JsonFileError: <root>/videorefer-qa-75k.json: truncated JSON at byte 1331'))
C("truncated_json", "hcstvg", "object", raw(HC_V2, lambda b: b[:200]),
  error=('v2_train', 'JsonFileError: <root>/anno_v2/train_v2.json: truncated JSON at byte 200'))
# -- empty file
C("empty_file", "vg", "regions", put_file(VG_REGIONS, b""),
  error=(None, 'JsonFileError: <root>/region_descriptions.json: empty file at byte 0'))
C("empty_file", "llava", "image_json", put_file(LLAVA_IMG, b""),
  error=(None, 'JsonFileError: <root>/onevision/sharegpt4v_coco.json: empty file at byte 0'))
C("empty_file", "partimagenet", "coco", put_file(PIN_TRAIN, b""),
  error=(None, 'JsonFileError: <root>/annotations/train.json: empty file at byte 0'))
# -- wrong top-level type
C("wrong_top_level", "osprey", "object", put_file(OSPREY_CONV, b'{"records": []}'),
  error=(None, 'JsonFileError: <root>/osprey_conversation.json: not a JSON array at byte 0'))
C("wrong_top_level", "lvis", "list", put_file(LVIS_VAL, b"[]"),
  error=(None, 'ValueError: lvis_v1_val.json: not a COCO-style annotation file'))
C("wrong_top_level", "hcstvg", "list", put_file(HC_V1, b"[1, 2]"),
  error=('v1_train', 'ValueError: anno_v1/train.json: not an HC-STVG annotation file'))
C("wrong_top_level", "mevis", "string", put_file(MEVIS_META, b'"videos"'),
  error=(None, 'ValueError: <root>/train/meta_expressions.json: expected {"videos": {<video>: ...}}'))
# -- 200k-deep nesting
C("deep_nesting", "osprey", "record_id", raw(OSPREY_CONV, lambda b: b.replace(b'"id": 7', b'"id": ' + DEEP.encode(), 1)),
  error=(None, 'JsonFileError: <root>/osprey_conversation.json: JSON nested too deeply at byte 2525'))
C("deep_nesting", "lvis", "coco_file", raw(LVIS_VAL, lambda b: b.replace(b'"licenses": []', b'"licenses": ' + DEEP.encode(), 1)),
  error=(None, 'JsonFileError: <root>/lvis_v1_val.json: JSON nested too deeply at byte 590'))
C("deep_nesting", "vcr", "jsonl_line", line("train.jsonl", 6, DEEP),
  rejects=[('bad_json', 'train.jsonl[6]')], removed=[('invalid_polygon', 'train.jsonl[6] object 1')])
C("deep_nesting", "llava", "jsonl_line", line(LLAVA_TXT, 1, DEEP),
  rejects=[('bad_json', 'onevision/magpie_pro_text.jsonl[1]')], touched=['llava/magpie_pro_text/1'])
C("deep_nesting", "pixelrefer-release", "record", raw(REL_IMG, lambda b: b.replace(b'"id": "qa-7"', b'"id": ' + DEEP.encode(), 1)),
  error=(None, 'JsonFileError: <root>/PixelRefer_stage1_trainingdata.json: JSON nested too deeply at byte 1412'))
# -- decompression-bomb PNG (30000x30000 header, truncated IDAT)
C("decompression_bomb", "lvis", "png_as_jpg", put_file("val2017/000000000001.jpg", bomb_png()),
  rejects=[('image_too_large', 'lvis_v1_val.json:images[id=1]')], touched=['lvis/val/1_0'])
C("decompression_bomb", "osprey", "png", put_file("coco_imgs/000000000103.jpg", bomb_png()),
  rejects=[('image_too_large', 'osprey_lvis_positive_negative.json[0]')], touched=['osprey/lvis_pos_neg/0'])
C("decompression_bomb", "vcr", "png", put_file(VCR_SHOT_A + ".jpg", bomb_png()),
  rejects=[('image_too_large', 'train.jsonl[0]')], touched=['vcr/train/train-0'])
C("decompression_bomb", "dam", "member", lambda root: dam_extra_sample("000000000009", jpg=bomb_png())(root),
  rejects=[('image_too_large', 'COCOStuff/images/00000000.tar/000000000009')])
# -- zero-byte / truncated / non-image image files
C("bad_image_file", "paco", "zero_bytes", put_file("val2017/000000000042.jpg", b""),
  rejects=[('image_empty', 'annotations/paco_lvis_v1_val.json:images[id=42]')], removed=[('mask_size_mismatch', 'annotations/paco_lvis_v1_val.json:annotations[id=10]')], touched=['paco/lvis_val/42_0'])
C("bad_image_file", "vg", "truncated", truncate_file("VG_100K/1.jpg", 20),
  rejects=[('image_unreadable', 'region_descriptions.json[0].regions[0]'), ('image_unreadable', 'region_descriptions.json[0].regions[1]'), ('image_unreadable', 'region_descriptions.json[0].regions[2]')], removed=[('box_outside_image', 'region_descriptions.json[0].regions[2]')], touched=['vg/regions/101', 'vg/regions/102'])
C("bad_image_file", "partimagenet", "not_an_image", put_file("images/train/n02085620_1.JPEG", b"this is not an image\n"),
  rejects=[('image_unreadable', 'annotations/train.json:images[id=1]')], removed=[('invalid_polygon', 'annotations/train.json:annotations[id=3]'), ('no_segmentation', 'annotations/train.json:annotations[id=5]'), ('unknown_category', 'annotations/train.json:annotations[id=4]')], touched=['partimagenet/train/1_0'])
C("bad_image_file", "mdvp", "not_an_image", put_file("images/sa_1.jpg", b"GIF89a nonsense"),
  rejects=[('image_unreadable', 'stage_2_fine-tuning/MDVP-Data/detailed_caption/gpt4v_vg_detailed_caption_point.json[4]')], touched=['mdvp/detailed_caption:gpt4v_vg_detailed_caption_point/4'])
C("bad_image_file", "pascalpart", "truncated", truncate_file("JPEGImages/2008_000002.jpg", 30),
  rejects=[('image_unreadable', 'Annotations_Part/2008_000002.mat')], removed=[('mask_size_mismatch', 'Annotations_Part/2008_000002.mat:objects[0].parts[3]')], touched=['pascalpart/trainval/2008_000002_0'])
# -- file names too long for the OS
C("name_too_long", "osprey", "file_name", edit(OSPREY_CONV, setter(0, "file_name", value=LONG_NAME)),
  rejects=[('bad_path', 'osprey_conversation.json[0]')], touched=['osprey/conversation/0'])
C("name_too_long", "vcr", "img_fn", edit_line("train.jsonl", 0, setter("img_fn", value=LONG_NAME)),
  rejects=[('bad_path', 'train.jsonl[0]')], touched=['vcr/train/train-0'])
C("name_too_long", "llava", "image", edit(LLAVA_IMG, setter(0, "image", value=LONG_NAME)),
  rejects=[('bad_path', 'onevision/sharegpt4v_coco.json[0]')], touched=['llava/sharegpt4v_coco/0'])
C("name_too_long", "hcstvg", "video_key", edit(HC_V2, lambda d: {**d, LONG_NAME: d["51_missing.mp4"]}),
  rejects=[('bad_path', 'anno_v2/train_v2.json[' + LONG_NAME + ']')])
# -- absolute paths and `..` in media paths
C("path_escape", "llava", "absolute", edit(LLAVA_IMG, setter(0, "image", value="/etc/hostname")),
  rejects=[('path_escapes_root', 'onevision/sharegpt4v_coco.json[0]')], touched=['llava/sharegpt4v_coco/0'])
C("path_escape", "vcr", "dotdot_metadata", edit_line("train.jsonl", 0, setter("metadata_fn", value="../../../etc/passwd")),
  rejects=[('path_escapes_root', 'train.jsonl[0]')], touched=['vcr/train/train-0'])
C("path_escape", "videorefer", "dotdot_video", edit(VR_SHORT, setter(0, "video", value="videos/../../clip_a")),
  rejects=[('path_escapes_root', 'videorefer-short-caption-500k.json[0]')], touched=['videorefer/short-caption/short_0'])
C("path_escape", "paco", "absolute", edit(PACO_VAL, lambda d: d["images"][0].__setitem__("file_name", "/etc/passwd")),
  rejects=[('path_escapes_root', 'annotations/paco_lvis_v1_val.json:images[id=42]')], removed=[('mask_size_mismatch', 'annotations/paco_lvis_v1_val.json:annotations[id=10]')], touched=['paco/lvis_val/42_0'])
# -- symlinks out of the root
C("symlink_escape", "lvis", "image", symlink_out("val2017/000000000001.jpg"),
  rejects=[('path_escapes_root', 'lvis_v1_val.json:images[id=1]')], touched=['lvis/val/1_0'])
C("symlink_escape", "vcr", "metadata", symlink_out(VCR_SHOT_A + ".json"),
  rejects=[('path_escapes_root', 'train.jsonl[0]')], touched=['vcr/train/train-0'])
C("symlink_escape", "videorefer", "frame_folder", symlink_out("videos/clip_a"),
  rejects=[('path_escapes_root', 'pixelrefer-qa.jsonl[0]'), ('path_escapes_root', 'videorefer-qa-75k.json[0]'), ('path_escapes_root', 'videorefer-qa-75k.json[1]'), ('path_escapes_root', 'videorefer-short-caption-500k.json[0]')], removed=[('placeholder_count_mismatch', 'videorefer-qa-75k.json[1]')], touched=['videorefer/pixelrefer-qa/pr_0', 'videorefer/qa/qa_0', 'videorefer/short-caption/short_0'])
# -- frame indices beyond int32 and beyond the video
C("frame_index", "videorefer", "beyond_int32", edit(VR_DET, lambda d: d[0]["annotation"][0].__setitem__("4294967296", d[0]["annotation"][0].pop("2"))),
  rejects=[('frame_out_of_range', 'videorefer-detailed-caption-125k.json[0] object 0')], touched=['videorefer/detailed-caption/det_0'])
C("frame_index", "videorefer", "beyond_video", edit(VR_QA, lambda d: d[0]["annotation"][1].__setitem__("9", d[0]["annotation"][1].pop("2"))),
  rejects=[('frame_out_of_range', 'videorefer-qa-75k.json[0] object 1')], touched=['videorefer/qa/qa_0'])
C("frame_index", "videorefer", "beyond_mkv_no_count", mkv_clip,
  rejects=[('frame_out_of_range', 'videorefer-detailed-caption-125k.json[0] object 0')], touched=['videorefer/detailed-caption/det_0'])
C("frame_index", "pixelrefer-release", "beyond_int32", edit(REL_LITE, lambda d: d[1]["masks"][0].__setitem__("99999999999", d[1]["masks"][0].pop("1"))),
  rejects=[('frame_out_of_range', 'PixelRefer-Lite_stage1_trainingdata.json[1]')], touched=['pixelrefer-release/pixelrefer-lite-stage1/1'])
C("frame_index", "pixelrefer-release", "beyond_video", edit(REL_LITE, lambda d: d[0]["masks"][0].__setitem__("5", d[0]["masks"][0].pop("2"))),
  rejects=[('frame_out_of_range', 'PixelRefer-Lite_stage1_trainingdata.json[0]')], touched=['pixelrefer-release/pixelrefer-lite-stage1/0'])
C("frame_index", "hcstvg", "st_frame_huge", edit(HC_V1, setter("10_clip_a.mp4", "st_frame", value=2**40)),
  rejects=[('span_out_of_range', 'anno_v1/train.json[10_clip_a.mp4]')], touched=['hcstvg/v1_train/10_clip_a'])
# -- duplicate LVIS-style image ids
C("duplicate_image_id", "lvis", "val", edit(LVIS_VAL, lambda d: d["images"].append(dict(d["images"][0], coco_url="http://x/val2017/000000000001.jpg"))),
  rejects=[('duplicate_image_id', 'lvis_v1_val.json:images[id=1]')], touched=['lvis/val/1_0'])
C("duplicate_image_id", "partimagenet", "train", edit(PIN_TRAIN, lambda d: d["images"].append(dict(d["images"][0]))),
  rejects=[('duplicate_image_id', 'annotations/train.json:images[id=1]')], removed=[('invalid_polygon', 'annotations/train.json:annotations[id=3]'), ('no_segmentation', 'annotations/train.json:annotations[id=5]'), ('unknown_category', 'annotations/train.json:annotations[id=4]')], touched=['partimagenet/train/1_0'])
# -- VG region_id true / 101.7
C("vg_region_id", "vg", "true", edit(VG_REGIONS, setter(0, "regions", 0, "region_id", value=True)),
  rejects=[('bad_region_id', 'region_descriptions.json[0].regions[0]')], touched=['vg/regions/101'])
C("vg_region_id", "vg", "float", edit(VG_REGIONS, setter(0, "regions", 0, "region_id", value=101.7)),
  rejects=[('bad_region_id', 'region_descriptions.json[0].regions[0]')], touched=['vg/regions/101'])
# -- a non-dict ref in a RefCOCO refs pickle
C("refcoco_non_dict_ref", "refcoco", "none_first", refs_edit(REFCOCOPLUS, lambda refs: [None, *refs]),
  rejects=[('bad_ref', 'refcoco+/refs(unc).p:refs[0]')])
C("refcoco_non_dict_ref", "refcoco", "list_last", refs_edit(REFCOCOPLUS, lambda refs: [*refs, [1, 2]]),
  rejects=[('bad_ref', 'refcoco+/refs(unc).p:refs[1]')])
# -- DAM tars
C("dam_tar_symlink", "dam", "shard", symlink_out(DAM_TAR),
  rejects=[('path_escapes_root', 'COCOStuff/images/00000000.tar')], removed=[('image_missing', 'COCOStuff/images/00000000.tar/000000000006'), ('mask_size_mismatch', 'COCOStuff/images/00000000.tar/000000000003.pickle[0] frame 0'), ('no_regions', 'COCOStuff/images/00000000.tar/000000000002.pickle'), ('unsafe_pickle', 'COCOStuff/images/00000000.tar/000000000004.pickle'), ('unsafe_pickle', 'COCOStuff/images/00000000.tar/000000000005.pickle')], touched=['dam/COCOStuff/000000000001_7', 'dam/COCOStuff/000000000001_8'])
C("dam_member_name", "dam", "absolute", dam_extra_sample("/abs/000000000009"),
  rejects=[('path_escapes_root', 'COCOStuff/images/00000000.tar//abs/000000000009.jpg')])
C("dam_member_name", "dam", "dotdot", dam_extra_sample("../000000000009"),
  rejects=[('path_escapes_root', 'COCOStuff/images/00000000.tar/../000000000009.jpg')])
C("dam_member_huge", "dam", "sparse_4gib_pickle", dam_append(("000000000009.jpg", b"x"), ("000000000009.pickle", 4 << 30)),
  rejects=[('member_too_large', 'COCOStuff/images/00000000.tar/000000000009.pickle')])
# -- pickles that allocate / name os.system
C("pickle_allocates", "dam", "bytearray_8e9", dam_extra_sample("000000000009", BYTEARRAY_BOMB),
  rejects=[('unsafe_pickle', 'COCOStuff/images/00000000.tar/000000000009.pickle')])
C("pickle_allocates", "dam", "binbytes8_8e9", dam_extra_sample("000000000009", BINBYTES8_BOMB),
  rejects=[('bad_pickle', 'COCOStuff/images/00000000.tar/000000000009.pickle')])
C("pickle_allocates", "refcoco", "bytearray_8e9", put_file(REFCOCOPLUS, BYTEARRAY_BOMB),
  rejects=[('unsafe_pickle', 'refcoco+/refs(unc).p')], touched=['refcoco/refcocoplus_unc/5_51'])
C("pickle_os_system", "refcoco", "refs_file", put_file(REFCOCOPLUS, OS_SYSTEM),
  rejects=[('unsafe_pickle', 'refcoco+/refs(unc).p')], touched=['refcoco/refcocoplus_unc/5_51'])
C("pickle_os_system", "dam", "member", dam_extra_sample("000000000009", OS_SYSTEM),
  rejects=[('unsafe_pickle', 'COCOStuff/images/00000000.tar/000000000009.pickle')])
# -- records that are lists / strings / null instead of dicts
C("record_not_dict", "osprey", "null", edit(OSPREY_CONV, setter(1, value=None)),
  rejects=[('bad_record', 'osprey_conversation.json[1]')], touched=['osprey/conversation/1'])
C("record_not_dict", "vg", "string", edit(VG_REGIONS, setter(1, value="regions")),
  rejects=[('bad_record', 'region_descriptions.json[1]')], touched=['vg/regions/201'])
C("record_not_dict", "mdvp", "list", edit(MDVP_BOX, setter(0, value=[1, 2])),
  rejects=[('bad_record', 'stage_2_fine-tuning/MDVP-Data/QA/gpt4v_coco_qa_box.json[0]')], touched=['mdvp/QA:gpt4v_coco_qa_box/0'])
C("record_not_dict", "llava", "jsonl_list", line(LLAVA_TXT, 1, "[1, 2]"),
  rejects=[('bad_record', 'onevision/magpie_pro_text.jsonl[1]')], touched=['llava/magpie_pro_text/1'])
C("record_not_dict", "videorefer", "string", edit(VR_QA, setter(1, value="qa_1")),
  rejects=[('not_video_record', 'videorefer-qa-75k.json[1]')], removed=[('placeholder_count_mismatch', 'videorefer-qa-75k.json[1]')])
C("record_not_dict", "pixelrefer-release", "null", edit(REL_IMG, setter(3, value=None)),
  rejects=[('bad_media', 'PixelRefer_stage1_trainingdata.json[3]')], removed=[('region_mask_mismatch', 'PixelRefer_stage1_trainingdata.json[3]')])
C("record_not_dict", "hcstvg", "list", edit(HC_V2, setter("54_silent.mp4", value=[1])),
  rejects=[('bad_record', 'anno_v2/train_v2.json[54_silent.mp4]')], removed=[('empty_caption', 'anno_v2/train_v2.json[54_silent.mp4]')])
C("record_not_dict", "vcr", "null_line", line("train.jsonl", 2, "null"),
  rejects=[('bad_record', 'train.jsonl[2]')], removed=[('bad_object_ref', 'train.jsonl[2]')])
C("record_not_dict", "dam", "region_string", dam_replace_first(lambda regions: regions.__setitem__(0, "region")),
  rejects=[('bad_region', 'COCOStuff/images/00000000.tar/000000000001.pickle[0]')], touched=['dam/COCOStuff/000000000001_7'])
C("record_not_dict", "refcoco", "sentence_string", refs_edit(REFCOCOPLUS, setter(0, "sentences", 0, value="man in red")),
  rejects=[('bad_sentence', 'refcoco+/refs(unc).p:refs[ref_id=5].sentences[0]')], touched=['refcoco/refcocoplus_unc/5_51'])
# -- missing required keys
C("missing_key", "osprey", "annotation", edit(OSPREY_CONV, deleter(1, "annotation")),
  rejects=[('bad_record', 'osprey_conversation.json[1]')], touched=['osprey/conversation/1'])
C("missing_key", "videorefer", "conversations", edit(VR_QA, deleter(0, "conversations")),
  rejects=[('bad_turn', 'videorefer-qa-75k.json[0]')], touched=['videorefer/qa/qa_0'])
C("missing_key", "hcstvg", "bbox", edit(HC_V1, deleter("10_clip_a.mp4", "bbox")),
  rejects=[('bad_record', 'anno_v1/train.json[10_clip_a.mp4]')], touched=['hcstvg/v1_train/10_clip_a'])
C("missing_key", "mdvp", "image", edit(MDVP_BOX, deleter(0, "image")),
  rejects=[('bad_record', 'stage_2_fine-tuning/MDVP-Data/QA/gpt4v_coco_qa_box.json[0]')], touched=['mdvp/QA:gpt4v_coco_qa_box/0'])
C("missing_key", "lvis", "category_id", edit(LVIS_VAL, lambda d: ann(d, 10).pop("category_id") and None),
  rejects=[('unknown_category', 'lvis_v1_val.json:annotations[id=10]')])
C("missing_key", "pascalpart", "objects", pascal_mat_without_objects,
  rejects=[('bad_annotation', 'Annotations_Part/2008_000004.mat')], removed=[('no_parts', 'Annotations_Part/2008_000004.mat')])
C("missing_key", "llava", "conversations", edit(LLAVA_IMG, deleter(0, "conversations")),
  rejects=[('bad_turn', 'onevision/sharegpt4v_coco.json[0]')], touched=['llava/sharegpt4v_coco/0'])
# -- huge integers
C("huge_integer", "mdvp", "point", edit(MDVP_POINT, setter(0, "points", 0, value=[BIG_INT, 5])),
  rejects=[('point_out_of_frame', 'stage_2_fine-tuning/MDVP-Data/detailed_caption/gpt4v_vg_detailed_caption_point.json[0]')], touched=['mdvp/detailed_caption:gpt4v_vg_detailed_caption_point/0'])
C("huge_integer", "lvis", "category_id", edit(LVIS_VAL, set_ann(10, "category_id", BIG_INT)),
  rejects=[('unknown_category', 'lvis_v1_val.json:annotations[id=10]')])
C("huge_integer", "vg", "5000_digits", raw(VG_REGIONS, lambda b: b.replace(b'"region_id": 201', b'"region_id": ' + HUGE_DIGITS.encode(), 1)),
  error=(None, 'JsonFileError: <root>/region_descriptions.json: invalid JSON at byte 472'))
C("huge_integer", "vcr", "5000_digits_line", raw("train.jsonl", lambda b: b.replace(b'"answer_label": 7', b'"answer_label": ' + HUGE_DIGITS.encode(), 1)),
  rejects=[('bad_json', 'train.jsonl[3]')], removed=[('bad_label', 'train.jsonl[3]')])
C("huge_integer", "videorefer", "bbox_width", edit(VR_SHORT, setter(0, "annotation", 0, "1", "segmentation", value=[[0, 0, BIG_INT, 0, BIG_INT, 5, 0, 5]])),
  rejects=[('bad_mask', 'videorefer-short-caption-500k.json[0] object 0 frame 1')], touched=['videorefer/short-caption/short_0'])
# -- duplicate sample ids
C("duplicate_sample_id", "vcr", "annot_id", raw("train.jsonl", lambda b: b.replace(b"\n\n", b"\n" + b.split(b"\n")[0] + b"\n", 1)),
  rejects=[('duplicate_id', 'train.jsonl[1]')])
C("duplicate_sample_id", "videorefer", "record_id", edit(VR_QA, lambda d: d[2].update(id="qa_0", video="videos/clip_a")),
  rejects=[('duplicate_id', 'videorefer-qa-75k.json[2]')], removed=[('path_escapes_root', 'videorefer-qa-75k.json[2]')])
C("duplicate_sample_id", "dam", "ann_id", dam_replace_first(lambda regions: regions[1].__setitem__("ann_id", 7)),
  rejects=[('duplicate_id', 'COCOStuff/images/00000000.tar/000000000001.pickle[1]')], touched=['dam/COCOStuff/000000000001_8'])

# -- more file-level damage, in the files each source streams or indexes
C("truncated_json", "mevis", "mask_dict", raw(MEVIS_MASKS, lambda b: b[:150]),
  error=('train:000000', 'JsonFileError: <root>/train/mask_dict.json: not readable JSON'))
C("empty_file", "mevis", "mask_dict", put_file(MEVIS_MASKS, b""),
  error=('train:000000', 'JsonFileError: <root>/train/mask_dict.json: not readable JSON'))
C("invalid_utf8", "mevis", "mask_dict", raw(MEVIS_MASKS, lambda b: b.replace(b'"12"', b'"1\xff"', 1)),
  error=('train:000000', 'JsonFileError: <root>/train/mask_dict.json: not readable JSON'))
C("deep_nesting", "mevis", "mask_dict", raw(MEVIS_MASKS, lambda b: b.replace(b'"12": [', b'"12": [' + DEEP.encode() + b",", 1)),
  error=('train:000000', 'JsonFileError: <root>/train/mask_dict.json: JSON nested more than 64 levels'))
C("deep_nesting", "videorefer", "jsonl_line", line(VR_JSONL, 0, DEEP),
  rejects=[('bad_json', 'pixelrefer-qa.jsonl[0]')], touched=['videorefer/pixelrefer-qa/pr_0'])
C("deep_nesting", "vcr", "metadata", put_file("vcr1images/1054_Harry_Potter/shot_b@1.json", DEEP.encode()),
  rejects=[('bad_metadata', 'train.jsonl[5]'), ('bad_metadata', 'train.jsonl[6]'), ('bad_metadata', 'val.jsonl[0]')], removed=[('image_missing', 'train.jsonl[5]'), ('invalid_polygon', 'train.jsonl[6] object 1')], touched=['vcr/val/val-0'])
C("deep_nesting", "hcstvg", "object", raw(HC_V1, lambda b: b.replace(b'"st_time"', b'"deep": ' + DEEP.encode() + b', "st_time"', 1)),
  error=('v1_train', 'JsonFileError: <root>/anno_v1/train.json: JSON nested too deeply at byte 606'))
C("huge_integer", "videorefer", "5000_digits_line", line(VR_JSONL, 0, '{"id": ' + HUGE_DIGITS + "}"),
  rejects=[('bad_json', 'pixelrefer-qa.jsonl[0]')], touched=['videorefer/pixelrefer-qa/pr_0'])
C("huge_integer", "hcstvg", "5000_digits", raw(HC_V1, lambda b: b.replace(b'"st_frame": 2', b'"st_frame": ' + HUGE_DIGITS.encode(), 1)),
  error=('v1_train', 'JsonFileError: <root>/anno_v1/train.json: invalid JSON at byte 83'))
C("invalid_utf8", "hcstvg", "object", raw(HC_V2, lambda b: b.replace(b"A man stands.", b"A m\xe4n stands.", 1)),
  error=('v2_train', 'JsonFileError: <root>/anno_v2/train_v2.json: invalid UTF-8 at byte 1178'))
C("truncated_json", "refcoco", "instances", raw("refcoco+/instances.json", lambda b: b[:-30]),
  error=('refcocoplus_unc', 'JsonFileError: <root>/refcoco+/instances.json: truncated JSON at byte 1272'))
C("bad_annotation_file", "pascalpart", "truncated_mat", truncate_file(PASCAL + "/2008_000002.mat", 200),
  rejects=[('bad_mat', 'Annotations_Part/2008_000002.mat')], removed=[('mask_size_mismatch', 'Annotations_Part/2008_000002.mat:objects[0].parts[3]')], touched=['pascalpart/trainval/2008_000002_0'])
C("bad_video_file", "llava", "text_as_mp4", put_file(LLAVA_VID.rsplit("/", 1)[0] + "/academic_source/Charades/ABC12.mp4", b"not a video\n"),
  rejects=[('video_unreadable', '0_30_s_academic_v0_1/0_30_s_academic_oe_v0_1_qa_processed.json[0]')], touched=['llava/0_30_s_academic_oe_v0_1_qa_processed/0'])
C("bad_video_file", "hcstvg", "zero_bytes", put_file("video/10_clip_a.mp4", b""),
  rejects=[('video_unreadable', 'anno_v1/train.json[10_clip_a.mp4]'), ('video_unreadable', 'anno_v2/train_v2.json[10_clip_a.mp4]')], removed=[('video_size_mismatch', 'anno_v2/train_v2.json[10_clip_a.mp4]')], touched=['hcstvg/v1_train/10_clip_a'])
C("bad_video_file", "videorefer", "truncated_mp4", truncate_file("videos/clip_b.mp4", 200),
  rejects=[('video_unreadable', 'pixelrefer-detailed-caption.json[0]'), ('video_unreadable', 'videorefer-detailed-caption-125k.json[0]'), ('video_unreadable', 'videorefer-detailed-caption-125k.json[1]')], removed=[('object_without_masks', 'videorefer-detailed-caption-125k.json[1] object 0')], touched=['videorefer/detailed-caption/det_0', 'videorefer/pixelrefer-detailed-caption/det_0'])
