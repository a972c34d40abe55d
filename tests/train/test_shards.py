"""The shard reader: typed samples with tensors, equal to what the shard stage computed."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch

from pipelines import shard
from schemas import masks
from tests.pipelines.test_shard import _samples, build_workspace
from tokenization import saot, saot_torch
from tokenization.saot import SaotConfig
from train.shards import ObjectCrop, ShardSample, dataset, iter_shards, to_shard_sample


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("ws")
    dest = shard.shard_stage(out, build_workspace(out), SaotConfig(mode="paper"), shard.ShardLimits())
    return sorted(dest.glob("*.tar"))


def test_reader_yields_typed_samples_with_tensors(shards):
    image, video, _ = list(iter_shards(shards))
    assert isinstance(image, ShardSample) and isinstance(image.objects[0], ObjectCrop)
    expected = {s.id: s for s in _samples()}
    assert image.sample == expected["lvis/val2017/1"] and video.sample == expected["mevis/train/v1"]
    assert (image.mode, image.lite, image.n) == ("paper", False, 32)
    assert [(f.frame, f.sampled, f.annotated, tuple(f.image.shape)) for f in image.frames] == [(0, True, True, (3, 40, 64))]
    assert [(o.region, o.frame) for o in video.objects] == [(0, 1), (0, 5), (1, 5)]
    assert [o.frame for o in video.objects_of(0)] == [1, 5]
    stored = []
    for s in (image, video):
        for o in s.objects:
            rf = {f.frame: f for f in s.sample.regions[o.region].frames}[o.frame]
            decoded = masks.decode(rf.mask.model_dump())
            g = saot.mask_geometry(decoded, SaotConfig(mode="paper"))
            assert (o.box, o.crop_hw, o.resize_hw, o.grid_hw, o.scale, o.area) == (g.box, g.crop_hw, g.resize_hw, g.grid_hw, g.scale, g.area)
            stored.append(tuple(o.crop.shape[1:]) == g.crop_hw)
            assert o.crop.dtype == torch.uint8 and tuple(o.crop.shape[1:]) == (g.crop_hw if shard.native_crop(g) else g.resize_hw)
            frame = {f.frame: f for f in s.frames}[o.frame].image
            (written,) = saot_torch.tokenize_batch([frame], [saot_torch.CropJob(0, decoded, g)], SaotConfig(mode="paper"))
            assert torch.equal(o.saot_crop(), written.crop)  # native crops resize to the very bytes of a resized one
            assert torch.equal(o.grid, saot.grid_mask(decoded[g.crop_slice], g))
            assert o.token_count == saot.token_count(o.grid)
            assert torch.equal(o.pos, torch.from_numpy(saot.position_grid(g)))
            assert o.local is None
    assert stored == [True] * 5  # paper mode never shrinks: every crop is enlarged and stored native


def test_dataset_is_a_plain_webdataset_pipeline(shards):
    keys = [s.key for s in dataset([str(p) for p in shards])]
    assert keys == ["lvis~val2017~1", "mevis~train~v1", "mevis~train~zfile"]


def _raw_members(tar_path, key: str) -> dict:
    """One sample's members as raw bytes, by extension (what webdataset yields before decoding)."""
    with tarfile.open(tar_path) as tar:
        raw = {m.name.split(".", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.name.startswith(key + ".")}
    return {**raw, "__key__": key}


def test_foreign_format_is_refused_with_the_key(shards):
    raw = _raw_members(shards[0], "lvis~val2017~1")
    meta = json.loads(raw["json"])
    meta["format"] = "other/9"
    raw.update({"json": json.dumps(meta).encode(), "__key__": "k1", "__url__": "x.tar"})
    with pytest.raises(ValueError, match="x.tar: sample k1 has format 'other/9'"):
        to_shard_sample(raw)


def test_raw_bytes_members_decode_too(shards):
    raw = _raw_members(shards[0], "mevis~train~v1")
    s = to_shard_sample(raw)
    (decoded,) = [x for x in iter_shards(shards) if x.key == s.key]
    assert len(s.objects) == 3 and all(torch.equal(a.image, b.image) for a, b in zip(s.frames, decoded.frames))
    assert all(torch.equal(a.crop, b.crop) and torch.equal(a.grid, b.grid) for a, b in zip(s.objects, decoded.objects))
    assert np.load(io.BytesIO(raw["grid.npy"])).dtype == np.float32
    assert sum(o.grid.numel() for o in s.objects) == np.load(io.BytesIO(raw["grid.npy"])).size


def test_native_crop_rule_follows_the_scale():
    def geometry(side: int, mode: str) -> saot.Geometry:
        return saot.geometry(side * side, (100, 100, 100 + side - 1, 100 + side - 1), (480, 640), SaotConfig(mode=mode))

    assert [shard.native_crop(geometry(side, "official")) for side in (8, 40, 80, 200)] == [True, True, True, False]
    assert [geometry(side, "official").scale < 1 for side in (8, 40, 80, 200)] == [False, False, False, True]
    assert shard.native_crop(geometry(200, "paper"))  # no large-object shrink in paper mode


def test_a_shrunk_crop_is_stored_resized(tmp_path):
    from PIL import Image

    from schemas import Media, Provenance, Region, RegionFrame, Sample, Turn

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    mask = np.zeros((160, 160), dtype=np.uint8)
    mask[5:155, 5:155] = 1  # 22500 px > 100 patches: official SAOT shrinks it
    sample = Sample(id="t/train/big", source="t", subset="train", split="train", license="CC0-1.0", task="region_qa",
                    media=Media(kind="image", path="big.png", width=160, height=160),
                    regions=[Region(prompt="mask", mask_origin="annotation", frames=[RegionFrame(frame=0, mask=masks.encode(mask))])],
                    conversation=[Turn(role="user", text="<obj0>?"), Turn(role="assistant", text="a square")],
                    provenance=Provenance(file="t", locator="0", adapter="t", adapter_version="1"))
    members = shard.encode_sample(sample, tmp_path, SaotConfig(), torch.device("cpu"), view_size=0)
    (o,) = to_shard_sample({**{n.split(".", 1)[1]: d for n, d in members}, "__key__": sample.key}).objects
    g = saot.mask_geometry(mask)
    frame = torch.from_numpy(np.asarray(Image.open(tmp_path / "big.png"))).permute(2, 0, 1)
    (written,) = saot_torch.tokenize_batch([frame], [saot_torch.CropJob(0, mask, g)], SaotConfig())
    assert g.scale < 1 and tuple(o.crop.shape[1:]) == g.resize_hw == (154, 154)  # ceil(159 * 0.933 / 14) * 14
    assert torch.equal(o.crop, written.crop) and o.saot_crop() is o.crop
