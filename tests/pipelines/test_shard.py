"""`pixelrefer shard`: shard contents, index, rejects, byte-identical reruns, SIGKILL resume, Ray."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from pipelines import shard, workspace
from pipelines.cli import main
from schemas import Media, Region, RegionFrame, Reject, Turn, masks
from sources.fixtures import rect_mask, write_image
from tests.factories import image_sample, video_sample
from tokenization import saot, saot_torch, shardformat
from tokenization.saot import SaotConfig

REPO = Path(__file__).resolve().parents[2]
IMAGE_RECTS = [(8, 6, 30, 20), (40, 4, 58, 36)]


def _mask(w, h, rect):
    return masks.encode(rect_mask(w, h, rect))


def _samples(extra_images: int = 0):
    """Valid samples of every kind the shard stage meets, and the ones it must reject."""
    two = image_sample(
        id="lvis/val2017/1", media=Media(kind="image", path="img/a.jpg", width=64, height=40),
        regions=[Region(prompt="mask", mask_origin="annotation", frames=[RegionFrame(frame=0, mask=_mask(64, 40, r))]) for r in IMAGE_RECTS],
        conversation=[Turn(role="user", text="Compare <obj0> and <obj1>."), Turn(role="assistant", text="<obj0> is left.")],
    )
    frames = [f"vid/{i:05d}.png" for i in range(7)]
    video = video_sample().model_copy(update={
        "id": "mevis/train/v1", "key": "",
        "media": Media(kind="video", path="vid", frames=frames, fps=3.0, width=32, height=24),
        "regions": [Region(prompt="mask", mask_origin="annotation",
                           frames=[RegionFrame(frame=f, mask=_mask(32, 24, (2 + f, 3, 12 + f, 15))) for f in (1, 5)]),
                    Region(prompt="mask", mask_origin="sam2", frames=[RegionFrame(frame=5, mask=_mask(32, 24, (20, 10, 30, 22)))])],
    })
    video = video.model_validate(video.model_dump())  # re-derive the key
    boxed = image_sample(id="lvis/val2017/box9", media=Media(kind="image", path="img/a.jpg", width=64, height=40),
                         regions=[Region(prompt="box", frames=[RegionFrame(frame=0, box=(8.0, 6.0, 30.0, 20.0))])])
    clip = video.model_validate({**video.model_dump(), "id": "mevis/train/zfile", "key": "",
                                 "media": {"kind": "video", "path": "clip.mov", "num_frames": 7, "fps": 3.0, "width": 32, "height": 24}})
    more = [image_sample(id=f"lvis/val2017/x{i}", media=Media(kind="image", path="img/a.jpg", width=64, height=40),
                         regions=[Region(prompt="mask", frames=[RegionFrame(frame=0, mask=_mask(64, 40, (4 + i % 20, 4, 24 + i % 20, 30)))])])
            for i in range(extra_images)]
    return [two, boxed, video, clip, *more]


def _frame(root: Path, i: int) -> np.ndarray:
    return np.asarray(Image.open(root / f"vid/{i:05d}.png").convert("RGB"))


def build_workspace(out: Path, extra_images: int = 0) -> Path:
    """A hand-built ingest/mix workspace (the layout `pixelrefer ingest` + `mix` write); returns the mix file."""
    root = out / "native"
    write_image(root / "img/a.jpg", 64, 40, IMAGE_RECTS, seed=1)
    with av.open(str(root / "clip.mov"), "w", format="mov") as container:  # lossless PNG frames
        stream = container.add_stream("png", rate=3)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "rgb24"
        for i in range(7):
            write_image(root / f"vid/{i:05d}.png", 32, 24, [(2 + i, 3, 12 + i, 15)], seed=i)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(_frame(root, i), format="rgb24")))
        container.mux(stream.encode())
    rows = []
    by_source: dict[str, list] = {}
    for s in _samples(extra_images):
        by_source.setdefault(s.source, []).append(s)
    for source, samples in sorted(by_source.items()):
        part = workspace.part_path(out, source, 0)
        workspace.write_part(part, samples, {"samples": len(samples)})
        workspace.write_json_atomic(workspace.unified_dir(out, source) / "source.json", {"source": source, "root": str(root), "adapter_version": "1"})
        rows += [{"id": s.id, "source": source, "part": str(part.relative_to(out)), "row": i} for i, s in enumerate(samples)]
    rows.sort(key=lambda r: r["id"])
    mix = out / "mix" / "demo" / "stage1.parquet"
    mix.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=workspace.MIX_SCHEMA), mix)
    return mix


def _files(dest: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(dest.iterdir())}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("ws")
    mix = build_workspace(out)
    assert main(["shard", "--mix", str(mix), "--out", str(out), "--max-samples-per-shard", "1"]) == 0
    return out, mix, out / "shards" / "demo" / "stage1"


def test_index_sizes_and_rejects_match_the_files(built):
    _, _, dest = built
    index = json.loads((dest / "index.json").read_text())
    assert index["samples"] == 3 and index["records"] == 4
    assert index["rejected"] == {"region_without_mask": 1}
    # one block per row (--max-samples-per-shard 1); row 1 (the box region) is rejected, so its block has no shard
    assert [s["shard"] for s in index["shards"]] == ["000000000.tar", "000000002.tar", "000000003.tar"]
    blocks = [json.loads((dest / f"00000000{row}_stats.json").read_text()) for row in range(4)]
    assert [[s["shard"] for s in b["shards"]] for b in blocks] == [["000000000.tar"], [], ["000000002.tar"], ["000000003.tar"]]
    assert [b["rejected"] for b in blocks] == [{}, {"region_without_mask": 1}, {}, {}]
    assert [s for b in blocks for s in b["shards"]] == index["shards"]
    for entry in index["shards"]:
        data = (dest / entry["shard"]).read_bytes()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert json.loads((dest / "sizes.json").read_text()) == {"000000000.tar": 1, "000000002.tar": 1, "000000003.tar": 1}
    rejects = [json.loads(line) for line in (dest / "rejects.jsonl").read_text().splitlines()]
    assert [(r["reason"], r["locator"]) for r in rejects] == [("region_without_mask", "lvis/val2017/box9")]


def test_sample_json_geometry_and_token_counts_equal_tokenization(built):
    out, _, dest = built
    import webdataset as wds

    got = {s["__key__"]: s for s in wds.WebDataset(str(dest / "000000002.tar"), shardshuffle=False).decode("torchrgb8")}
    (key, raw), = got.items()
    assert key == "mevis~train~v1"
    meta = raw["json"]
    sample = {s.id: s for s in _samples()}["mevis/train/v1"]
    assert meta["sample"] == sample.model_dump(mode="json")
    # 7 frames at 3 fps, 1 fps sampling -> frames 0, 3, 6; annotated 1 and 5 are kept too
    assert [(f["frame"], f["sampled"], f["annotated"]) for f in meta["frames"]] == [
        (0, True, False), (1, False, True), (3, True, False), (5, False, True), (6, True, False)]
    assert [f["timestamp"] for f in meta["frames"]] == [0.0, 1 / 3, 1.0, 5 / 3, 2.0]
    grid, pos = raw["grid.npy"], raw["pos.npy"]
    assert meta["view_size"] == 384 and [f["view"] for f in meta["frames"]] == [None] * 5
    stop = 0
    for obj, (ri, rf) in zip(meta["objects"], [(0, 1), (0, 5), (1, 5)]):
        region_frame = {f.frame: f for f in sample.regions[ri].frames}[rf]
        decoded = masks.decode(region_frame.mask.model_dump())
        g = saot.mask_geometry(decoded)
        assert (obj["region"], obj["frame"], tuple(obj["box"]), tuple(obj["crop_hw"]), tuple(obj["resize_hw"]), obj["scale"]) == (
            ri, rf, g.box, g.crop_hw, g.resize_hw, g.scale)
        cells = grid[obj["cells"][0] : obj["cells"][1]].reshape(g.grid_hw)
        assert torch.equal(torch.from_numpy(cells), saot.grid_mask(decoded[g.crop_slice], g))
        assert obj["token_count"] == saot.token_count(torch.from_numpy(cells)) == 32
        np.testing.assert_array_equal(pos[obj["cells"][0] : obj["cells"][1]].reshape(*g.grid_hw, 2), saot.position_grid(g))
        assert obj["cells"] == [stop, stop + g.grid_hw[0] * g.grid_hw[1]]  # grid cells back to back
        stop = obj["cells"][1]
        # small objects are enlarged by SAOT, so stored at native size: the JPEG of the frame's crop
        exact = torch.from_numpy(_frame(out / "native", rf).copy()).permute(2, 0, 1)[(slice(None), *g.crop_slice)]
        assert torch.equal(raw[obj["crop"]], shardformat.image(shardformat.jpeg(exact, shardformat.CROP_QUALITY)))
    assert [o["crop"] for o in meta["objects"]] == ["crop_0000.jpg", "crop_0001.jpg", "crop_0002.jpg"]
    assert grid.shape == (stop,) and pos.shape == (stop, 2)
    assert raw["frame_000001.png"].shape == (3, 24, 32)  # full-resolution original PNG


def test_video_files_are_stored_whole_and_decoded_when_read(built):
    out, _, dest = built
    import tarfile

    from train.shards import iter_shards

    with tarfile.open(dest / "000000003.tar") as tar:
        assert tar.extractfile("mevis~train~zfile.clip.mov").read() == (out / "native/clip.mov").read_bytes()
    (clip,) = list(iter_shards([dest / "000000003.tar"]))
    assert [(f.frame, f.timestamp, f.sampled, f.annotated) for f in clip.frames] == [
        (0, 0.0, True, False), (1, 1 / 3, False, True), (3, 1.0, True, False), (5, 5 / 3, False, True), (6, 2.0, True, False)]
    for f in clip.frames:  # the clip's PNG codec is lossless: the very source frames
        assert torch.equal(f.image, torch.from_numpy(_frame(out / "native", f.frame).copy()).permute(2, 0, 1))
    (frames,) = list(iter_shards([dest / "000000002.tar"]))  # the same clip as a frame folder: the same crops
    assert all(torch.equal(a.crop, b.crop) for a, b in zip(clip.objects, frames.objects))


def test_images_keep_their_original_bytes(built):
    out, _, dest = built
    import tarfile

    with tarfile.open(dest / "000000000.tar") as tar:
        names = tar.getnames()
        original = tar.extractfile("lvis~val2017~1.image.jpg").read()
        infos = tar.getmembers()
    assert names == ["lvis~val2017~1.json", "lvis~val2017~1.image.jpg", "lvis~val2017~1.view.jpg",
                     "lvis~val2017~1.crop_0000.jpg", "lvis~val2017~1.crop_0001.jpg", "lvis~val2017~1.grid.npy", "lvis~val2017~1.pos.npy"]
    assert original == (out / "native/img/a.jpg").read_bytes()
    assert {(i.mtime, i.mode, i.uid, i.gid, i.uname, i.gname) for i in infos} == {(0, 0o644, 0, 0, "", "")}


READER = """
import json, sys, webdataset as wds
rows = []
for s in wds.WebDataset(sys.argv[1:], shardshuffle=False).decode("torchrgb8"):
    m = s["json"]
    rows.append({"key": s["__key__"], "sample": m["sample"], "objects": m["objects"],
                 "crops": [int(s[o["crop"]].sum()) for o in m["objects"]],
                 "views": [list(s[f["view"]].shape) for f in m["frames"] if f["view"]],
                 "grid": s["grid.npy"].tolist(),
                 "frames": [isinstance(s[f["member"]], bytes) if f["member"].startswith("clip.")  # a video file, as it is
                            else s[f["member"]].shape[1:] == (m["sample"]["media"]["height"], m["sample"]["media"]["width"])
                            for f in m["frames"]]})
print(json.dumps(rows))
"""


def test_plain_webdataset_in_a_fresh_process_reads_every_field(built):
    _, _, dest = built
    urls = [str(dest / f"00000000{row}.tar") for row in (0, 2, 3)]
    proc = subprocess.run([sys.executable, "-c", READER, *urls], capture_output=True, text=True, cwd=REPO, check=True)
    rows = json.loads(proc.stdout)
    from train.shards import iter_shards

    ours = list(iter_shards(urls))
    assert [r["key"] for r in rows] == [s.key for s in ours] == ["lvis~val2017~1", "mevis~train~v1", "mevis~train~zfile"]
    for row, s in zip(rows, ours):
        assert row["sample"] == s.sample.model_dump(mode="json")
        assert row["crops"] == [o.crop.sum().item() for o in s.objects]
        assert row["grid"] == [v for o in s.objects for v in o.grid.flatten().tolist()]
        assert [o["token_count"] for o in row["objects"]] == [o.token_count for o in s.objects]
        assert all(row["frames"])
        assert row["views"] == [[3, 384, 384] for f in s.frames if f.view is not None]


def test_rerun_is_byte_identical_and_skips_complete_shards(built):
    out, mix, dest = built
    before = _files(dest)
    mtimes = {p.name: p.stat().st_mtime_ns for p in dest.glob("*.tar")}
    assert main(["shard", "--mix", str(mix), "--out", str(out), "--max-samples-per-shard", "1"]) == 0
    assert _files(dest) == before
    assert {p.name: p.stat().st_mtime_ns for p in dest.glob("*.tar")} == mtimes  # kept, not rewritten
    for p in list(dest.iterdir()):
        p.unlink()
    assert main(["shard", "--mix", str(mix), "--out", str(out), "--max-samples-per-shard", "1"]) == 0
    assert _files(dest) == before


def test_sigkill_mid_run_then_rerun_gives_identical_shards(tmp_path):
    mix = build_workspace(tmp_path, extra_images=30)
    cmd = [sys.executable, "-m", "pipelines.cli", "shard", "--mix", str(mix), "--out", str(tmp_path), "--max-samples-per-shard", "2"]
    dest = tmp_path / "shards" / "demo" / "stage1"
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (dest / "000000004_stats.json").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (dest / "index.json").exists(), "the run finished before the kill; the test proves nothing"
    assert main(["shard", "--mix", str(mix), "--out", str(tmp_path), "--max-samples-per-shard", "2"]) == 0
    resumed = _files(dest)
    for p in list(dest.iterdir()):
        p.unlink()
    assert main(["shard", "--mix", str(mix), "--out", str(tmp_path), "--max-samples-per-shard", "2"]) == 0
    assert _files(dest) == resumed
    assert json.loads(resumed["index.json"])["samples"] == 33


def test_only_the_blocks_without_stats_are_redone(tmp_path):
    mix = build_workspace(tmp_path, extra_images=4)
    dest = shard.shard_stage(tmp_path, mix, SaotConfig(), shard.ShardLimits(max_samples=2))
    before = _files(dest)
    mtimes = {p.name: p.stat().st_mtime_ns for p in dest.glob("*.tar")}
    # workers finish blocks in any order: a crash can leave a later block complete and an earlier one partial
    (dest / "000000002_stats.json").unlink()
    (dest / "000000002.tar").write_bytes(b"partial")
    shard.shard_stage(tmp_path, mix, SaotConfig(), shard.ShardLimits(max_samples=2))
    assert _files(dest) == before
    assert {p.name for p in dest.glob("*.tar") if p.stat().st_mtime_ns != mtimes[p.name]} == {"000000002.tar"}


def test_shards_of_an_older_encoder_are_redone(tmp_path, capsys):
    mix = build_workspace(tmp_path)
    dest = shard.shard_stage(tmp_path, mix, SaotConfig(), shard.ShardLimits(max_samples=2))
    before = _files(dest)
    config = json.loads((dest / "config.json").read_text())
    (dest / "config.json").write_text(json.dumps({**config, "version": "2"}))  # as the previous encoder left it
    (dest / "000000000.tar").write_bytes(b"format 2 bytes")
    capsys.readouterr()
    shard.shard_stage(tmp_path, mix, SaotConfig(), shard.ShardLimits(max_samples=2))
    assert "shard demo/stage1: the data or the encoder changed since these shards were made (version; mix sha256 " in capsys.readouterr().out
    assert _files(dest) == before


def test_byte_limit_rolls_shards(tmp_path):
    mix = build_workspace(tmp_path, extra_images=3)
    dest = shard.shard_stage(tmp_path, mix, SaotConfig(), shard.ShardLimits(max_samples=100, max_bytes=1))
    index = json.loads((dest / "index.json").read_text())
    assert [s["samples"] for s in index["shards"]] == [1] * 6  # every sample alone once over the limit


def test_lite_shards_carry_the_extra_views(tmp_path):
    mix = build_workspace(tmp_path)
    assert main(["shard", "--mix", str(mix), "--out", str(tmp_path), "--lite"]) == 0
    from train.shards import iter_shards

    (image, video, _) = list(iter_shards(sorted((tmp_path / "shards/demo/stage1").glob("*.tar"))))
    assert image.lite and [o.token_count for o in image.objects] == [32, 32]
    assert [tuple(o.local.shape) for o in image.objects] == [(3, 224, 224)] * 2
    # the released Lite cache is keyed by frame: both objects get the first object's local view
    assert torch.equal(image.objects[0].local, image.objects[1].local)
    decoded = [masks.decode(r.frames[0].mask.model_dump()) for r in image.sample.regions]
    geoms = [saot.mask_geometry(m, SaotConfig(lite=True)) for m in decoded]
    first = saot_torch.tokenize_batch([image.frames[0].image], [saot_torch.CropJob(0, m[g.crop_slice], g) for m, g in zip(decoded, geoms)],
                                      SaotConfig(lite=True))
    assert torch.equal(image.objects[0].local, shardformat.image(shardformat.jpeg(first[0].local, shardformat.CROP_QUALITY)))
    assert not torch.equal(first[0].local, first[1].local)
    assert [(f.frame, tuple(f.lite_global.shape) if f.lite_global is not None else None) for f in video.frames] == [
        (0, None), (1, (3, 336, 336)), (3, None), (5, (3, 336, 336)), (6, None)]


def test_video_frame_sampling_follows_the_official_loader():
    assert shard.video_frames(7, None) == ([0, 3, 6], 3.0)
    assert shard.video_frames(50, 25.0) == ([0, 25], 25.0)
    frames, rate = shard.video_frames(3 * 600, None)  # 600 s > 180 frames at 1 fps: linspace over 180
    assert rate == 3.0 and len(frames) == 180 and frames[0] == 0 and frames[-1] == 1799


def test_rerun_with_other_settings_is_refused(built, capsys):
    out, mix, dest = built
    assert main(["shard", "--mix", str(mix), "--out", str(out), "--max-samples-per-shard", "1", "--lite"]) == 2
    assert capsys.readouterr().out.strip() == (
        f"pixelrefer shard: {dest} holds shards made with other settings (saot differ from {dest / 'config.json'}); "
        "rerun with the same flags, or delete that folder to rebuild")


def test_missing_mix_file_names_it(tmp_path, capsys):
    assert main(["shard", "--mix", str(tmp_path / "nope.parquet"), "--out", str(tmp_path)]) == 2
    assert "nope.parquet does not exist" in capsys.readouterr().out


def test_ray_actors_write_the_same_bytes(tmp_path, ray_local):
    mix = build_workspace(tmp_path, extra_images=5)
    dest = shard.shard_stage(tmp_path, mix, SaotConfig(), shard.ShardLimits(max_samples=3))
    local = _files(dest)
    assert json.loads(local["index.json"])["shards"][-1]["shard"] == "000000006.tar"  # 9 rows: blocks at rows 0, 3, 6
    for workers in (1, 2):  # each worker reads its own rows and writes its own shards: the same files for any count
        for p in list(dest.iterdir()):
            p.unlink()
        shard.shard_stage(tmp_path, mix, SaotConfig(), shard.ShardLimits(max_samples=3), workers=workers)
        assert _files(dest) == local


def test_a_video_file_shorter_than_its_frame_count_is_rejected(built):
    out, _, _ = built
    clip = _samples()[3]
    too_long = clip.model_validate({**clip.model_dump(), "media": {**clip.media.model_dump(), "num_frames": 12}})  # 1 fps of 3 fps: frames 0, 3, 6, 9
    with pytest.raises(Reject) as info:
        shard.encode_sample(too_long, out / "native", SaotConfig(), torch.device("cpu"))
    assert info.value.reason == "frame_out_of_range"
    assert info.value.message == f"{out / 'native' / 'clip.mov'} has no frame 9 (decoded 7 frames)"


def _general_qa(id: str, media: Media | None):
    """A region-free general_qa sample (the llava adapter's kind): text-only when `media` is None."""
    return image_sample(id=id, source="llava", subset="onevision", task="general_qa", media=media, regions=[], meta={},
                        conversation=[Turn(role="user", text="What is 2 + 2?"), Turn(role="assistant", text="4")])


def test_general_qa_without_regions_shards_and_reads_back(built, tmp_path):
    out, _, _ = built
    from train.shards import iter_shards

    text = _general_qa("llava/onevision/t1", None)
    image = _general_qa("llava/onevision/i1", Media(kind="image", path="img/a.jpg", width=64, height=40))
    members = {s.key: shard.encode_sample(s, out / "native", SaotConfig(), torch.device("cpu"), view_size=28) for s in (text, image)}
    assert [name for name, _ in members[text.key]] == ["llava~onevision~t1.json"]  # no frames, views or crops
    assert [name for name, _ in members[image.key]] == [
        "llava~onevision~i1.json", "llava~onevision~i1.image.jpg", "llava~onevision~i1.view.jpg"]
    header = json.loads(members[text.key][0][1])
    assert (header["sample"]["media"], header["frames"], header["objects"]) == (None, [], [])
    shard.write_block([(0, text.key, members[text.key]), (1, image.key, members[image.key])], tmp_path, 0, 2, shard.ShardLimits())
    back = list(iter_shards([tmp_path / "000000000.tar"]))
    assert [(s.sample, [f.frame for f in s.frames], s.objects) for s in back] == [(text, [], []), (image, [0], [])]
    assert back[1].frames[0].view.shape == (3, 28, 28)
