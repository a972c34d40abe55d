"""The shard reader: typed samples with tensors, equal to what the shard stage computed."""

import io
import json
import os
import tarfile

import numpy as np
import pytest
import torch

from pipelines import shard
from schemas import masks
from tests.pipelines.test_shard import _samples, build_workspace
from tokenization import saot, saot_torch, shardformat
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
            # a native crop is the JPEG of the frame's crop; saot_crop resizes it to resize_hw
            assert torch.equal(o.crop, shardformat.image(shardformat.jpeg(frame[(slice(None), *g.crop_slice)], shardformat.CROP_QUALITY)))
            assert torch.equal(o.saot_crop(), saot_torch.saot_crop(o.crop, g.resize_hw)) and o.saot_crop().shape[1:] == g.resize_hw
            assert torch.equal(o.grid, saot.grid_mask(decoded[g.crop_slice], g))
            assert o.token_count == saot.token_count(o.grid)
            assert torch.equal(o.pos, torch.from_numpy(saot.position_grid(g)))
            assert o.local is None
    assert stored == [True] * 5  # paper mode never shrinks: every crop is enlarged and stored native


def test_dataset_is_a_plain_webdataset_pipeline(shards):
    keys = [s.key for s in dataset([str(p) for p in shards])]
    assert keys == ["lvis~val2017~1", "mevis~train~v1", "mevis~train~zfile"]


def test_our_tar_reader_yields_what_webdataset_yields(shards):
    import webdataset as wds

    theirs = list(wds.WebDataset([str(p) for p in shards], shardshuffle=False, empty_check=False))
    ours = [s for p in shards for s in shardformat.read_tar(p)]
    assert [s["__key__"] for s in ours] == ["lvis~val2017~1", "mevis~train~v1", "mevis~train~zfile"]
    assert ours == [{k: v for k, v in s.items() if k != "__local_path__"} for s in theirs]


def test_grids_are_read_without_np_load_and_checked():
    grid = np.arange(12, dtype=np.float32).reshape(6, 2)
    assert shardformat.floats(shardformat.npy(grid), 12).tolist() == grid.ravel().tolist()
    assert shardformat.floats(grid, 12).tolist() == grid.ravel().tolist()  # a webdataset decoder ran
    for wrong in (grid.astype(np.float64), np.zeros(13, np.float32), grid.astype(">f4")):
        with pytest.raises(ValueError, match="not an .npy member of 12 little-endian float32 values"):
            shardformat.floats(shardformat.npy(wrong), 12)


def _tar(path, members: list[tuple[str, bytes]]):
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:  # as pipelines.shard writes them
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_tar_reader_follows_gnu_long_names_and_refuses_damage(tmp_path):
    key = "k" * 150  # over the 100 bytes of a tar header's name: a GNU `L` record holds it
    good = _tar(tmp_path / "good.tar", [(f"{key}.json", b"{}"), (f"{key}.crop_0000.jpg", b"\xff" * 700), ("short.json", b"[]")])
    assert [{k: v for k, v in s.items() if k != "__url__"} for s in shardformat.read_tar(good)] == [
        {"__key__": key, "json": b"{}", "crop_0000.jpg": b"\xff" * 700}, {"__key__": "short", "json": b"[]"}]
    data = good.read_bytes()
    # blocks: L header 0, long name 512, json header 1024, json 1536, L 2048, name 2560, crop header 3072, crop 3584-4608
    (tmp_path / "flipped.tar").write_bytes(data[:1030] + b"X" + data[1031:])
    (tmp_path / "cut.tar").write_bytes(data[:3584 + 100])
    (tmp_path / "no_end.tar").write_bytes(data[:4608])
    link = tarfile.TarInfo("k.json")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with tarfile.open(tmp_path / "link.tar", "w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(link)
    twice = _tar(tmp_path / "twice.tar", [("a.json", b"{}"), ("a.json", b"{}")])
    errors = {}
    for name in ("flipped", "cut", "no_end", "link", "twice"):
        with pytest.raises(ValueError) as info:
            list(shardformat.read_tar(tmp_path / f"{name}.tar"))
        errors[name] = str(info.value).replace(str(tmp_path) + "/", "")
    assert errors == {
        "flipped": "flipped.tar: not a pixelrefer shard tar at byte 1024 (bad header or member type b'0'): rebuild it with `pixelrefer shard`",
        "cut": f"cut.tar: truncated: member '{key}.crop_0000.jpg' at byte 3072 needs 700 bytes, 100 left",
        "no_end": "no_end.tar: truncated at byte 4608: the tar ends without its end-of-archive block",
        "link": "link.tar: not a pixelrefer shard tar at byte 0 (bad header or member type b'2'): rebuild it with `pixelrefer shard`",
        "twice": f"{twice}: member 'a.json' at byte 1024 repeats a member of sample 'a'".replace(str(tmp_path) + "/", ""),
    }


def _raw_members(tar_path, key: str) -> dict:
    """One sample's members as raw bytes, by extension (what webdataset yields before decoding)."""
    with tarfile.open(tar_path) as tar:
        raw = {m.name.split(".", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.name.startswith(key + ".")}
    return {**raw, "__key__": key}


def test_format_2_shards_are_refused_with_the_key(shards):
    raw = _raw_members(shards[0], "lvis~val2017~1")
    meta = json.loads(raw["json"])
    meta["format"] = "pixelrefer-shard/2"  # raw-pixel crops and views: this reader cannot read them
    raw.update({"json": json.dumps(meta).encode(), "__key__": "k1", "__url__": "x.tar"})
    with pytest.raises(ValueError) as info:
        to_shard_sample(raw)
    assert str(info.value) == ("x.tar: sample k1 has format 'pixelrefer-shard/2', expected 'pixelrefer-shard/3': "
                               "rebuild the shards with this version's `pixelrefer shard`")


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

    # crop -> resize: 63 -> 630 (100x the pixels), 95 -> 196 (4.3x), 135 -> 140 (1.08x), 255 -> 182 (shrunk)
    assert [shard.native_crop(geometry(side, "official")) for side in (8, 40, 80, 200)] == [True, True, False, False]
    assert [geometry(side, "official").scale < 1 for side in (8, 40, 80, 200)] == [False, False, False, True]
    # no large-object shrink in paper mode: 256 -> 266 is enlarged, by 1.08x the pixels: stored resized
    assert [shard.native_crop(geometry(side, "paper")) for side in (40, 200)] == [True, False]


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
    frame = torch.from_numpy(np.array(Image.open(tmp_path / "big.png"))).permute(2, 0, 1)
    (written,) = saot_torch.tokenize_batch([frame], [saot_torch.CropJob(0, mask[g.crop_slice], g)], SaotConfig())
    assert g.scale < 1 and tuple(o.crop.shape[1:]) == g.resize_hw == (154, 154)  # ceil(159 * 0.933 / 14) * 14
    assert torch.equal(o.crop, shardformat.image(shardformat.jpeg(written.crop, shardformat.CROP_QUALITY))) and o.saot_crop() is o.crop


# Reader split (train.data.Loader over train.shard_input.ShardSource): stage folders of plain tar
# files whose samples are numbered; the stub source encodes a sample as a one-token item.


class _NumberedSource:
    """Wraps a ShardSource: a sample "fFsI" encodes as the item [number], or raises `rejects[key]`."""

    def __init__(self, folder, rejects=None):
        from train.shard_input import ShardSource

        self.shards, self.rejects = ShardSource(folder, None, None, None, buffer=4), rejects or {}
        self.files, self.reader_share, self.stream = self.shards.files, self.shards.reader_share, self.shards.stream

    def __len__(self):
        return len(self.shards)

    def encode(self, raw):
        from schemas import Reject
        from train.data import Encoded

        if raw["__key__"] in self.rejects:
            raise Reject(self.rejects[raw["__key__"]], "stub", raw["__key__"])
        return Encoded([int(raw["txt"])], [int(raw["txt"])], torch.zeros(0, 3, 2, 2), True, [])


def _stage(folder, files: int, per_file: int):
    """`files` tars of `per_file` samples "f{file}s{i}" numbered 0, 1, ... in file order."""
    folder.mkdir()
    for f in range(files):
        with tarfile.open(folder / f"{f:09d}.tar", "w") as tar:
            for i in range(per_file):
                data = str(f * per_file + i).encode()
                info = tarfile.TarInfo(f"f{f}s{i}.txt")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    (folder / "sizes.json").write_text(json.dumps({f"{f:09d}.tar": per_file for f in range(files)}))
    return folder


@pytest.fixture
def opened(monkeypatch):
    """The tar files opened from now on, in order (webdataset opens local shards with the built-in open)."""
    import builtins

    names, real_open = [], builtins.open

    def counting_open(path, *args, **kwargs):
        if str(path).endswith(".tar"):
            names.append(os.path.basename(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    return names


def _as_worker(monkeypatch, worker: int, workers: int):
    """Make the loader see itself in DataLoader worker `worker` of `workers` (in this process)."""
    from types import SimpleNamespace

    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: SimpleNamespace(id=worker, num_workers=workers))


def _numbers(batch) -> list[int]:
    return batch.input_ids[:, 0].tolist()


def test_two_ranks_by_two_workers_read_disjoint_shards_covering_every_sample(tmp_path, monkeypatch, opened):
    from itertools import islice

    from train.data import Loader

    source = _NumberedSource(_stage(tmp_path / "stage", files=8, per_file=3))
    read, files = [], []
    for rank in range(2):
        loader = Loader(source, 2, rank, 2, seed=3, pad_id=0, workers=2)
        # 4 readers get 8 // 4 = 2 files of 3 samples each: 6 samples, 3 micro-batches per reader
        assert (loader.shard_readers, loader.batches_per_epoch) == (4, 6)
        for worker in range(2):
            _as_worker(monkeypatch, worker, 2)
            opened.clear()
            numbers = [n for batch in islice(iter(loader), 3) for n in _numbers(batch)]
            read.append(numbers)
            files.append(list(opened))
            own = {int(name[:9]) for name in opened}  # tar f holds samples 3f, 3f + 1, 3f + 2
            assert len(opened) == 2 and {n // 3 for n in numbers} == own  # it reads only the files it opens
    assert sorted(n for numbers in read for n in numbers) == list(range(24))  # all samples, none twice
    assert sorted(name for names in files for name in names) == [f"{f:09d}.tar" for f in range(8)]  # no file opened twice


def test_one_reader_keeps_the_single_process_order_and_reads_every_shard(tmp_path, opened):
    from train.data import Loader

    source = _NumberedSource(_stage(tmp_path / "stage", files=8, per_file=3))
    order = [int(raw["txt"]) for raw in source.stream(0, 3)]  # the epoch order one reader streams
    opened.clear()
    loader = Loader(source, 2, 0, 1, seed=3, pad_id=0)
    batches = loader.batches()
    assert loader.shard_readers == 0 and [_numbers(next(batches)) for _ in range(12)] == [order[i:i + 2] for i in range(0, 24, 2)]
    assert len(opened) == 8 and sorted(order) == list(range(24))


def test_fewer_shards_than_readers_falls_back_to_a_sample_split_with_a_note(tmp_path, monkeypatch, opened, capsys):
    from itertools import islice

    from train.data import Loader

    source = _NumberedSource(_stage(tmp_path / "stage", files=3, per_file=4))
    order = [int(raw["txt"]) for raw in source.stream(0, 3)]
    loaders = [Loader(source, 2, rank, 2, seed=3, pad_id=0, workers=2) for rank in range(2)]
    assert capsys.readouterr().err == ("3 shard files for 4 readers (2 ranks x 2 workers): every reader reads every file "
                                       "and keeps its share of the samples (sample-level split)\n")  # rank 0 only
    batches = {}
    for rank, loader in enumerate(loaders):
        assert (loader.shard_readers, loader.batches_per_epoch) == (0, 3)  # 12 samples // 2 ranks // 2
        for worker in range(2):
            _as_worker(monkeypatch, worker, 2)
            opened.clear()
            got = list(islice(iter(loader), 2 - worker))  # worker 0 makes rank batches 0 and 2, worker 1 batch 1
            assert len(opened) == 3  # the whole epoch order, read by every reader
            batches.update({(rank, worker + 2 * k): _numbers(b) for k, b in enumerate(got)})
    # rank r keeps positions p % 2 == r of the epoch order, 2 per micro-batch
    assert batches == {(r, b): [order[4 * b + r], order[4 * b + 2 + r]] for r in range(2) for b in range(3)}


def test_dataloader_workers_resume_a_shard_split_mid_round(tmp_path):
    from train.data import Loader
    from train.train import batch_stream

    source = _NumberedSource(_stage(tmp_path / "stage", files=4, per_file=4))
    full = Loader(source, 2, 0, 1, seed=3, pad_id=0, workers=2)
    stream = batch_stream(full, 2)
    head = [_numbers(next(stream)) for _ in range(6)]
    resumed = Loader(source, 2, 0, 1, seed=3, pad_id=0, workers=2)
    resumed.load_state_dict({"batches": 3})  # an odd position: worker 1's batch comes next
    stream = batch_stream(resumed, 2)
    assert [_numbers(next(stream)) for _ in range(3)] == head[3:] and resumed.consumed == 6
    # 2 readers x 2 files x 4 samples: 4 micro-batches per reader, 8 per epoch; no sample twice
    assert full.batches_per_epoch == 8 and len({n for b in head for n in b}) == 12


def test_skipped_samples_are_counted_by_reason_not_printed(tmp_path, capsys):
    from train.data import Loader

    rejects = {"f0s1": "too_long", "f1s0": "too_long", "f1s2": "token_count_mismatch"}
    source = _NumberedSource(_stage(tmp_path / "stage", files=2, per_file=3), rejects)
    loader = Loader(source, 3, 0, 1, seed=0, pad_id=0)
    batches = loader.batches()
    first, second = next(batches), next(batches)  # one epoch: the 6 samples in 2 micro-batches
    assert sorted([*_numbers(first), *_numbers(second)]) == [0, 2, 4]
    assert first.skipped + second.skipped == {"too_long": 2, "token_count_mismatch": 1}
    assert loader.skipped == {"too_long": 2, "token_count_mismatch": 1} and capsys.readouterr().err == ""
    next(batches), next(batches)  # the next epoch skips them again: the counts are cumulative
    assert loader.skipped == {"too_long": 4, "token_count_mismatch": 2}
