"""`pixelrefer shard` never dies on one image: bad images are per-sample rejects, odd modes become RGB."""

import json
import struct
import tarfile
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from pipelines import workspace
from pipelines.cli import main
from schemas import Media, Region, RegionFrame, masks
from sources.fixtures import draw, rect_mask, write_image
from tests.factories import image_sample
from train.shards import iter_shards

W, H = 64, 40
GREY16 = (np.arange(W * H, dtype=np.uint32).reshape(H, W) * 25).astype(np.uint16)  # 0 .. 63975


def _save(path, image: Image.Image, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height, with no pixel data."""
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)), (b"IDAT", zlib.compress(b"")), (b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(struct.pack(">I", len(c)) + t + c + struct.pack(">I", zlib.crc32(t + c)) for t, c in chunks)


def _workspace(out):
    """Five one-region image samples: a plain JPEG, a truncated JPEG, a bomb, a 16-bit PNG, a CMYK JPEG."""
    root = out / "native"
    write_image(root / "img/good.jpg", W, H, [(8, 6, 30, 20)], seed=1)
    good = (root / "img/good.jpg").read_bytes()
    (root / "img/trunc.jpg").write_bytes(good[: len(good) // 2])
    (root / "img/bomb.png").write_bytes(_bomb_png(10000, 10000))
    _save(root / "img/grey16.png", Image.fromarray(GREY16), "PNG")
    _save(root / "img/cmyk.jpg", Image.fromarray(draw(W, H, [(8, 6, 30, 20)], seed=2)).convert("CMYK"), "JPEG")
    mask = masks.encode(rect_mask(W, H, (8, 6, 30, 20)))
    samples = [image_sample(id=f"lvis/val2017/{name}", media=Media(kind="image", path=f"img/{name}.{ext}", width=W, height=H),
                            regions=[Region(prompt="mask", mask_origin="annotation", frames=[RegionFrame(frame=0, mask=mask)])])
               for name, ext in [("good", "jpg"), ("trunc", "jpg"), ("bomb", "png"), ("grey16", "png"), ("cmyk", "jpg")]]
    part = workspace.part_path(out, "lvis", 0)
    workspace.write_part(part, samples, {"samples": len(samples)})
    workspace.write_json_atomic(workspace.unified_dir(out, "lvis") / "source.json", {"source": "lvis", "root": str(root), "adapter_version": "1"})
    rows = [{"id": s.id, "source": "lvis", "part": str(part.relative_to(out)), "row": i} for i, s in enumerate(samples)]
    mix = out / "mix" / "demo" / "stage1.parquet"
    mix.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=workspace.MIX_SCHEMA), mix)
    return mix


def test_bad_images_are_counted_rejects_and_odd_modes_are_stored_as_rgb(tmp_path):
    mix = _workspace(tmp_path)
    assert main(["shard", "--mix", str(mix), "--out", str(tmp_path)]) == 0
    dest = tmp_path / "shards" / "demo" / "stage1"
    index = json.loads((dest / "index.json").read_text())
    assert (index["records"], index["samples"]) == (5, 3)
    assert index["rejected"] == {"image_too_large": 1, "image_unreadable": 1}
    rejects = [json.loads(line) for line in (dest / "rejects.jsonl").read_text().splitlines()]
    assert [(r["reason"], r["locator"]) for r in rejects] == [("image_unreadable", "lvis/val2017/trunc"),
                                                              ("image_too_large", "lvis/val2017/bomb")]
    assert rejects[0]["detail"] == "img/trunc.jpg: OSError: Truncated File Read"
    assert rejects[1]["detail"] == "img/bomb.png: 10000x10000 = 100000000 pixels, more than 89478485"

    with tarfile.open(dest / "000000000.tar") as tar:
        names = tar.getnames()
        assert tar.extractfile("lvis~val2017~good.image.jpg").read() == (tmp_path / "native/img/good.jpg").read_bytes()
    assert "lvis~val2017~grey16.image.png" in names and "lvis~val2017~cmyk.image.png" in names  # re-encoded as RGB PNG
    frames = {s.key: s.frames[0].image for s in iter_shards([dest / "000000000.tar"])}  # the trainer's decoder
    grey = torch.from_numpy((GREY16 >> 8).astype(np.uint8))
    assert frames["lvis~val2017~grey16"].dtype == torch.uint8
    assert torch.equal(frames["lvis~val2017~grey16"], grey.expand(3, H, W))
    cmyk = Image.open(tmp_path / "native/img/cmyk.jpg")
    assert cmyk.mode == "CMYK"
    assert torch.equal(frames["lvis~val2017~cmyk"], torch.from_numpy(np.array(cmyk.convert("RGB"))).permute(2, 0, 1))
    assert sorted(frames) == ["lvis~val2017~cmyk", "lvis~val2017~good", "lvis~val2017~grey16"]

