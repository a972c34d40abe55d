"""`pixelrefer export`: the demo mix as official training JSON, read back by pixelrefer-release, and the
official loader's parsing rules (`check_official`) on what it writes."""

import json
import re
from collections import Counter

import numpy as np
import pytest

from pipelines.cli import main
from pipelines.demo_data import write_demo
from pipelines.export import ExportError, check_official, export, official_record
from pipelines.ingest import ingest_source
from pipelines.mix import load_recipe, mix
from pipelines.workspace import iter_mixed_samples
from schemas import Reject, masks, validate
from sources.fixtures import rect_mask, write_image
from sources.release import ReleaseAdapter
from sources.roots import Roots

# image masks (lvis, osprey), boxes (vg: skipped), a frame folder (mevis), an mp4 and frame folders (videorefer)
SOURCES = ["lvis", "vg", "osprey", "mevis", "videorefer"]
RELEASE_NAMES = {"stage1": "PixelRefer_stage1_trainingdata.json", "stage2": "PixelRefer_stage2_trainingdata.json"}


@pytest.fixture(scope="module")
def ws(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    write_demo(tmp / "demo", SOURCES)
    for name in SOURCES:
        ingest_source(name, tmp / "demo" / name, tmp / "out", workers=2)
    mix(load_recipe("demo"), tmp / "out", allow_missing=True)
    return tmp


def mixed(ws, stage):
    return list(iter_mixed_samples(ws / "out", ws / "out" / "mix" / "demo" / f"{stage}.parquet"))


def run_export(ws, stage, folder, dialect="pixelrefer", name=None):
    path = ws / folder / (name or RELEASE_NAMES[stage])
    stats = export(ws / "out", ws / "out" / "mix" / "demo" / f"{stage}.parquet", path, ws / "demo", dialect)
    return stats, json.loads(path.read_text(encoding="utf-8")), path


def renumbered(sample):
    """(turns, regions) as the official format holds them: a system turn opens the first question,
    regions are numbered by first mention."""
    turns = [(t.role, t.text) for t in sample.conversation]
    if turns[0][0] == "system":
        turns = [("user", f"{turns[0][1]}\n{turns[1][1]}"), *turns[2:]]
    order = list(dict.fromkeys(int(i) for _, text in turns for i in re.findall(r"<obj(\d+)>", text)))
    turns = [(role, re.sub(r"<obj(\d+)>", lambda m: f"<obj{order.index(int(m[1]))}>", text)) for role, text in turns]
    return turns, [sample.regions[i] for i in order]


def assert_round_trip(original, back):
    """Same media (under the source's folder), pixel-exact masks on the same frames, same text."""
    source = original.source
    assert (back.media.kind, back.media.path, back.media.width, back.media.height, back.media.num_frames) == (
        original.media.kind, f"{source}/{original.media.path}", original.media.width, original.media.height,
        original.media.num_frames)
    assert back.media.frames == [f"{source}/{f}" for f in original.media.frames]
    expected_timing = (3.0, []) if original.media.frames else (original.media.fps, original.media.timestamps)
    assert (back.media.fps, back.media.timestamps) == expected_timing  # a frame folder is read at 3 fps
    turns, regions = renumbered(original)
    assert [(t.role, t.text) for t in back.conversation] == turns
    assert len(back.regions) == len(regions)
    for a, b in zip(regions, back.regions):
        assert [f.frame for f in b.frames] == [f.frame for f in a.frames]
        for fa, fb in zip(a.frames, b.frames):
            np.testing.assert_array_equal(masks.decode(fb.mask.model_dump()), masks.decode(fa.mask.model_dump()))
            assert fb.mask == fa.mask and fb.box == fa.box


def read_back(folder, media_root):
    adapter, roots = ReleaseAdapter(), Roots.of(folder, [media_root])
    outcomes = [o for unit in adapter.units(roots) for o in adapter.convert(roots, unit)]
    assert [o.to_dict() for o in outcomes if isinstance(o, Reject)] == []
    return {o.meta["id"]: o for o in outcomes}


def expected_skips(samples, dialect="pixelrefer"):
    skips = Counter()
    for s, _ in samples:
        if any(r.prompt != "mask" for r in s.regions):
            skips["not_mask_prompt"] += 1
        elif dialect == "videorefer" and s.media.kind == "image":
            skips["image_not_in_dialect"] += 1
    return dict(sorted(skips.items()))


def test_round_trip_of_both_demo_stages(ws):
    originals, boxes, retimed = {}, 0, 0
    for stage in ("stage1", "stage2"):
        samples = mixed(ws, stage)
        stats, records, _ = run_export(ws, stage, "json")
        assert stats["skipped"] == expected_skips(samples)
        boxes += stats["skipped"].get("not_mask_prompt", 0)
        kept = [s for s, _ in samples if all(r.prompt == "mask" for r in s.regions)]
        assert [r["id"] for r in records] == [s.id for s in kept] and stats["written"] == len(kept)
        # frame folders whose own timing is not the official 3 fps are noted
        timed = sum(1 for s in kept if s.media.frames and (s.media.timestamps or s.media.fps != 3.0))
        assert stats["notes"].get("timing_read_at_3fps", 0) == timed
        retimed += timed
        originals.update((s.id, s) for s in kept)
    assert boxes > 0 and retimed > 0  # vg's box regions, videorefer's timestamped frame list
    back = read_back(ws / "json", ws / "demo")
    assert sorted(back) == sorted(originals)
    assert {s.media.kind for s in originals.values()} == {"image", "video"}
    for sample_id, original in originals.items():
        assert_round_trip(original, back[sample_id])


def test_records_follow_the_official_loader(ws):
    stats, records, path = run_export(ws, "stage1", "rules")
    assert all(r["conversations"][0]["value"].startswith("<image>\n" if "image" in r else "<video>\n") for r in records)
    assert check_official(records, lite=True) == []
    # PixelRefer (non-Lite) binds one mask per <region>: exactly the multi-frame objects break it
    multi = [n for n, r in enumerate(records) if "video" in r and any(len(m) > 1 for m in r["masks"])]
    assert multi and stats["notes"]["multi_frame_objects"] == len(multi)
    assert check_official(records) == [
        f"record {n}: {len(records[n]['masks'])} <region> tokens for {sum(len(m) for m in records[n]['masks'])} masks"
        for n in multi]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert (lines[0], lines[-1], len(lines)) == ("[", "]", len(records) + 2)
    again = run_export(ws, "stage1", "rules_again")[2]
    assert again.read_bytes() == path.read_bytes()


def test_videorefer_dialect_round_trips_and_skips_images(ws):
    samples = mixed(ws, "stage1")
    stats, records, _ = run_export(ws, "stage1", "vr", "videorefer", "PixelRefer-Lite_stage1_trainingdata.json")
    assert stats["skipped"] == expected_skips(samples, "videorefer") and stats["skipped"]["image_not_in_dialect"] > 0
    assert check_official(records, "videorefer") == []
    assert all(isinstance(r["video"], str) and "masks" not in r for r in records)
    originals = {s.id: s for s, _ in samples if s.media.kind == "video" and all(r.prompt == "mask" for r in s.regions)}
    back = read_back(ws / "vr", ws / "demo")
    assert sorted(back) == sorted(originals)
    for sample_id, original in originals.items():
        assert_round_trip(original, back[sample_id])


def test_media_outside_the_media_root_is_an_error_that_counts_them(ws):
    samples = mixed(ws, "stage1")
    outside = [s for s, _ in samples if s.source != "lvis" and all(r.prompt == "mask" for r in s.regions)]
    target = ws / "outside" / "stage1.json"
    with pytest.raises(ExportError) as err:
        export(ws / "out", ws / "out" / "mix" / "demo" / "stage1.parquet", target, ws / "demo" / "lvis")
    first = str(err.value).splitlines()[0]
    assert first == (f"{len(outside)} sample(s) have media outside --media-root {(ws / 'demo' / 'lvis').resolve()} "
                     "(give a media root that holds every source's media), e.g.:")
    assert list(target.parent.iterdir()) == []  # neither the file nor its temporary


def test_cli_by_recipe_and_stage(ws, capsys):
    target = ws / "cli" / "stage2.json"
    argv = ["export", "--out", str(ws / "out"), "--recipe", "demo", "--stage", "stage2",
            "--out-file", str(target), "--media-root", str(ws / "demo")]
    assert main(argv) == 0
    stats, _, path = run_export(ws, "stage2", "cli_ref")
    assert target.read_bytes() == path.read_bytes()
    skipped = ", ".join(f"{k} {v}" for k, v in stats["skipped"].items()) or "none"
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"export: wrote {stats['written']} records (pixelrefer) to {target}; "
                      f"skipped {sum(stats['skipped'].values())}: {skipped}")
    assert main(["export", "--out-file", str(target), "--media-root", str(ws)]) == 2
    assert capsys.readouterr().err == "pixelrefer export: give --mix FILE, or --out OUT --recipe NAME --stage NAME\n"
    assert main(["export", "--mix", str(ws / "none.parquet"), "--out-file", str(target), "--media-root", str(ws)]) == 1


def two_region_sample(tmp_path):
    """An image sample whose text names region 1 before region 0."""
    write_image(tmp_path / "img" / "a.png", 32, 24, [(2, 2, 12, 10), (16, 8, 30, 20)])
    rle = [masks.encode(rect_mask(32, 24, r)) for r in [(2, 2, 12, 10), (16, 8, 30, 20)]]
    return validate({
        "id": "toy/a/1", "source": "toy", "subset": "a", "split": "train", "license": "x", "task": "region_qa",
        "media": {"kind": "image", "path": "img/a.png", "width": 32, "height": 24},
        "regions": [{"prompt": "mask", "mask_origin": "annotation", "frames": [{"frame": 0, "mask": m, "box": b}]}
                    for m, b in zip(rle, [(2, 2, 12, 10), (16, 8, 30, 20)])],
        "conversation": [{"role": "user", "text": "Is <obj1> right of <obj0>?"},
                         {"role": "assistant", "text": "Yes, <obj1> is right of <obj0>."}],
        "provenance": {"file": "f", "locator": "f[1]", "adapter": "toy", "adapter_version": "1"}}), rle


def test_regions_are_renumbered_by_first_mention_and_masks_follow(tmp_path):
    sample, rle = two_region_sample(tmp_path)
    problems, notes = {"outside": [], "missing": []}, Counter()
    record = official_record(sample, Roots.of(tmp_path), tmp_path.parent, "pixelrefer", problems, notes)
    assert record == {
        "id": "toy/a/1", "image": f"{tmp_path.name}/img/a.png",
        "conversations": [{"from": "human", "value": "<image>\nIs <region0><region> right of <region1><region>?"},
                          {"from": "gpt", "value": "Yes, <region0> is right of <region1>."}],
        "masks": [rle[1], rle[0]], "height": 24, "width": 32}
    assert problems == {"outside": [], "missing": []} and notes == Counter()


@pytest.mark.parametrize("change, problem", [
    (lambda r: r.pop("image"), "needs exactly one of image and video"),
    (lambda r: r.update(conversations=[{"from": "gpt", "value": "hi"}]), "no human turn"),
    (lambda r: r.update(masks=[]), "no list of masks"),
    (lambda r: r["masks"].append(r["masks"][0]), "1 <region> tokens for 2 masks"),
    (lambda r: r.update(height=48), "object 0: mask size [24, 32] is not the record's height/width [48, 32]"),
    (lambda r: (r.update(masks=[[[2.0, 2.0, 12.0, 2.0, 12.0, 10.0]]]), r.pop("height")),
     "object 0: a polygon or uncompressed RLE needs the record's height and width"),
    (lambda r: r["masks"][0].update(counts="0"), "object 0: compressed RLE runs cover 0 pixels, expected 24 x 32 = 768"),
    (lambda r: r["conversations"][0].update(value="<video>\nWhat is <region>?"), "media tags do not match one image"),
])
def test_check_official_names_each_broken_rule(change, problem):
    record = {"image": "a.png", "conversations": [{"from": "human", "value": "<image>\nWhat is <region>?"},
                                                  {"from": "gpt", "value": "A block."}],
              "masks": [masks.encode(rect_mask(32, 24, (2, 2, 12, 10)))], "height": 24, "width": 32}
    assert check_official([record]) == []
    change(record)
    assert check_official([record]) == [f"record 0: {problem}"]


@pytest.mark.parametrize("video, dialect, lite, problem", [
    ("v.mp4", "pixelrefer", False, "PixelRefer reads `video` only as a list (Unsupported video format)"),
    ("v.mp4", "pixelrefer", True, None),
    (["f0.jpg", "f1.jpg"], "pixelrefer", True, "a list of frames needs timestamps and masked_video"),
    (["v.mp4"], "videorefer", False, "VideoRefer reads `video` as one path"),
])
def test_check_official_video_forms(video, dialect, lite, problem):
    rle = masks.encode(rect_mask(32, 24, (2, 2, 12, 10)))
    record = {"video": video, "conversations": [{"from": "human", "value": "<video>\nWhat is <region>?"},
                                                {"from": "gpt", "value": "A block."}]}
    record["annotation" if dialect == "videorefer" else "masks"] = [
        {"3": {"segmentation": rle} if dialect == "videorefer" else rle}]
    assert check_official([record], dialect, lite) == ([f"record 0: {problem}"] if problem else [])


def test_unknown_dialect_and_missing_mix(tmp_path):
    with pytest.raises(ExportError, match="unknown dialect 'x'; choose one of pixelrefer, videorefer"):
        export(tmp_path, tmp_path / "m.parquet", tmp_path / "o.json", tmp_path, "x")
    with pytest.raises(ExportError, match=r"no mix file .*m.parquet: run `pixelrefer mix --recipe RECIPE --out"):
        export(tmp_path, tmp_path / "m.parquet", tmp_path / "o.json", tmp_path)


def test_check_official_videorefer_segmentation_rules():
    rle = masks.encode(rect_mask(32, 24, (2, 2, 12, 10)))
    record = {"video": "v.mp4", "conversations": [{"from": "human", "value": "<video>\nWhat is <object0><region>?"},
                                                  {"from": "gpt", "value": "A block."}],
              "annotation": [{"0": {"segmentation": rle}, "5": {"segmentation": None}}]}  # v1 reads null as empty
    assert check_official([record], "videorefer") == []
    record["annotation"][0]["5"] = {}  # issue #15: KeyError 'segmentation'
    assert check_official([record], "videorefer") == ["record 0: object 0: every frame needs a `segmentation`"]
