"""SAM 2 stage wiring with random weights (no checkpoint): frame indices, shapes, RLE, provenance."""

from __future__ import annotations

import json

import pytest

from pipelines import workspace
from pipelines.cli import main
from pipelines.sam2 import BoxMask, Sam2
from pipelines.segment import segment_source
from pipelines.videoqa.branches import Context, HeuristicBackend, description_branch
from schemas import Region, RegionFrame, masks, validate
from schemas.arrow import read_parquet
from tests.pipelines.videoqa_inputs import (
    CONFIG,
    H,
    W,
    vg_sample,
    video_sample,
    write_source,
)


@pytest.fixture(scope="module")
def sam():
    import torch

    torch.manual_seed(0)
    return Sam2(CONFIG, None, device="cpu", image_size=256)


def test_image_prompts_become_sam2_masks(tmp_path, sam):
    root, out = tmp_path / "vg", tmp_path / "out"
    write_source(out, root, "vg", [vg_sample(root, 1, "box"), vg_sample(root, 2, "point")])
    stats = segment_source(out, "vg", sam)
    samples = read_parquet(workspace.part_path(out, "vg_sam2", 0))
    assert stats["read"] == stats["written"] + stats["rejected"] == 2
    assert json.loads((out / "unified/vg_sam2/source.json").read_text())["root"] == str(root)
    for sample, prompt in zip(samples, ("box", "point")):
        validate(sample)
        region = sample.regions[0]
        assert (sample.source, region.prompt, region.mask_origin) == ("vg_sam2", "mask", "sam2_random")
        assert sample.id.startswith("vg_sam2/train/")
        rf = region.frames[0]
        assert rf.frame == 0 and rf.mask.size == (H, W)
        assert (rf.box, rf.point) == (((8.0, 6.0, 30.0, 24.0), None) if prompt == "box" else (None, (19.0, 15.0)))
        decoded = masks.decode(rf.mask.model_dump())
        assert decoded.shape == (H, W) and masks.encode(decoded)["counts"] == rf.mask.counts  # RLE round trip
        assert sample.meta["segment"] == {"regions": {"0": {"prompt": prompt, "mask_origin": None, "keyframe": 0}},
                                          "segmentor": "sam2", "config": CONFIG, "image_size": 256,
                                          "checkpoint": "random-init", "version": "2"}


def test_keyframe_box_propagates_through_the_video(tmp_path, sam):
    root, out = tmp_path / "mevis", tmp_path / "out"
    sample = video_sample(root, "mevis", "v1", [[(2, 2, 12, 12), (10, 2, 20, 12)]], ["block"])
    keyframe = sample.regions[0].frames[1]
    sample.regions[0] = Region(label="block", prompt="box", frames=[RegionFrame(frame=1, box=masks.bbox(keyframe.mask.model_dump()))])
    write_source(out, root, "mevis", [sample])
    stats = segment_source(out, "mevis", sam)
    got = read_parquet(workspace.part_path(out, "mevis_sam2", 0))
    assert (stats["read"], stats["written"], stats["rejected"]) == (1, 1, 0)
    region = got[0].regions[0]
    assert [rf.frame for rf in region.frames] == [0, 1]  # propagated backward from keyframe 1
    assert all(rf.mask.size == (H, W) and masks.area(rf.mask.model_dump()) > 0 for rf in region.frames)
    assert (region.prompt, region.mask_origin) == ("mask", "sam2_random")
    key = next(rf for rf in region.frames if rf.frame == 1)
    assert key.box == (10.0, 2.0, 20.0, 12.0)
    assert got[0].meta["segment"]["regions"] == {"0": {"prompt": "box", "mask_origin": None, "keyframe": 1}}


def test_cli_rerun_skips_complete_parts(tmp_path, sam, capsys):
    root, out = tmp_path / "vg", tmp_path / "out"
    write_source(out, root, "vg", [vg_sample(root, 1, "box")])
    segment_source(out, "vg", sam)
    part = workspace.part_path(out, "vg_sam2", 0)
    before = part.read_bytes()
    args = ["segment", "--source", "vg", "--out", str(out), "--sam2-config", CONFIG, "--sam2-checkpoint", "none",
            "--sam2-random-weights-for-tests", "--device", "cpu", "--sam2-image-size", "256"]
    assert main(args) == 0
    assert part.read_bytes() == before  # complete part kept, not recomputed
    assert f"1 of 1 samples written to {workspace.unified_dir(out, 'vg_sam2')}" in capsys.readouterr().out
    assert main(["segment", "--source", "vg", "--out", str(out), "--sam2-config", "nope.yaml", "--sam2-checkpoint", "none",
                 "--sam2-random-weights-for-tests"]) == 2
    assert "no sam2 config 'nope.yaml'" in capsys.readouterr().err
    assert main([a for a in args if a != "--sam2-random-weights-for-tests"]) == 2
    assert ("segment: --sam2-checkpoint none builds random SAM 2 weights, whose masks mean nothing: pass a checkpoint .pt "
            "file (or --sam2-random-weights-for-tests in wiring tests)") in capsys.readouterr().err


def test_description_branch_segmentor_propagates_a_keyframe(tmp_path, sam):
    root = tmp_path / "videorefer"
    sample = video_sample(root, "videorefer", "k", [[(20, 10, 28, 18), (24, 10, 32, 18)]], ["cube"])
    sample.regions[0] = Region(label="cube", prompt="mask", mask_origin="annotation", frames=sample.regions[0].frames[:1])
    detailed, short = description_branch(sample, root, Context(backend=HeuristicBackend(), sam2=sam))
    for out in (detailed, short):
        region = out.regions[0]
        assert (region.prompt, region.mask_origin) == ("mask", "sam2_random")
        assert [rf.frame for rf in region.frames] == [0, 1]  # keyframe 0 propagated to frame 1
        assert out.meta["from"] == "videorefer/train/k" and out.id.startswith("videoqa_videorefer/train/k_")
    assert detailed.conversation[1].text.startswith("<obj0> is a cube. <obj0> ")


def test_box_mask_rasterises_boxes_and_rejects_points(tmp_path, capsys):
    root, out = tmp_path / "vg", tmp_path / "out"
    write_source(out, root, "vg", [vg_sample(root, 1, "box"), vg_sample(root, 2, "point")])
    assert main(["segment", "--source", "vg", "--out", str(out), "--segmentor", "box-mask"]) == 0
    (sample,) = read_parquet(workspace.part_path(out, "vg_sam2", 0))
    region = sample.regions[0]
    assert (sample.id, region.prompt, region.mask_origin) == ("vg_sam2/train/1", "mask", "box")
    assert masks.bbox(region.frames[0].mask.model_dump()) == [8.0, 6.0, 30.0, 24.0]
    assert masks.area(region.frames[0].mask.model_dump()) == 22 * 18  # the whole box, nothing else
    assert sample.meta["segment"] == {"regions": {"0": {"prompt": "box", "mask_origin": None, "keyframe": 0}},
                                      "segmentor": "box-mask", "version": "2"}
    rejects = [json.loads(line) for line in (out / "rejects" / "vg_sam2.jsonl").read_text().splitlines()]
    assert rejects == [{"reason": "point_needs_sam2", "locator": "vg/train/2", "detail": "region 0: a point prompt cannot "
                        "be rasterised: segment it with SAM 2 (--segmentor sam2)"}]


def test_a_changed_input_part_is_redone_and_a_removed_one_leaves_no_output(tmp_path, capsys):
    root, out = tmp_path / "vg", tmp_path / "out"
    write_source(out, root, "vg", [vg_sample(root, 1, "box")])
    write_source(out, root, "vg", [vg_sample(root, 2, "box")], part=1)
    box = BoxMask()
    segment_source(out, "vg", box)
    kept = workspace.part_path(out, "vg_sam2", 1)
    kept_bytes, kept_mtime = kept.read_bytes(), kept.stat().st_mtime_ns
    write_source(out, root, "vg", [vg_sample(root, 3, "box")])  # part 0 now holds another sample
    stats = segment_source(out, "vg", box)
    assert [s.id for s in read_parquet(workspace.part_path(out, "vg_sam2", 0))] == ["vg_sam2/train/3"]
    assert (kept.read_bytes(), kept.stat().st_mtime_ns) == (kept_bytes, kept_mtime)  # unchanged input: reused
    marker = json.loads(workspace.marker_path(workspace.part_path(out, "vg_sam2", 0)).read_text())
    assert marker["made_from"] == {"stage": "segment", "version": "2", "segmentor": {"segmentor": "box-mask"},
                                   "input": {"part": "unified/vg/part-00000.parquet",
                                             "sha256": workspace.sha256_file(workspace.part_path(out, "vg", 0))}}
    assert (stats["read"], stats["written"], stats["parts"]) == (2, 2, 2)
    for suffix in (".parquet", ".done", ".rejects.jsonl"):  # input part 1 removed: so is its output
        workspace.part_path(out, "vg", 1).with_suffix(suffix).unlink(missing_ok=True)
    stats = segment_source(out, "vg", box)
    assert sorted(p.name for p in workspace.unified_dir(out, "vg_sam2").glob("part-*")) == [
        "part-00000.done", "part-00000.parquet", "part-00000.rejects.jsonl"]
    assert (stats["read"], stats["written"], stats["parts"]) == (1, 1, 1)
