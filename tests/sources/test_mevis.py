"""MeViS adapter: per-object regions, sorted frames, null frames left out, and every trap's reject."""

import json

import numpy as np
import pytest

from schemas import masks
from sources import mevis
from sources.fixtures import rect_mask
from sources.mevis import FIXTURE_RECTS, FIXTURE_SIZE, MevisAdapter, objects_phrase
from sources.roots import Roots
from tests.sources.test_registry import convert_fixture, split_outcomes

META = "train/meta_expressions.json videos."


@pytest.fixture()
def root(tmp_path):
    MevisAdapter().write_fixture(tmp_path)
    return tmp_path


def outcomes(root):
    samples, rejects = split_outcomes(convert_fixture(MevisAdapter(), root))
    return samples, [(r.reason, r.locator) for r in rejects]


def frames_of(region, anno_id):
    """[(frame, box)], after checking each decoded mask is the fixture rect of that frame."""
    for f in region.frames:
        expected = rect_mask(*FIXTURE_SIZE, FIXTURE_RECTS[anno_id][f.frame]).astype(bool)
        np.testing.assert_array_equal(masks.decode(f.mask.model_dump()), expected)
    return [(f.frame, f.box) for f in region.frames]


def test_units_per_split(root):
    assert [(u.name, u.spec) for u in MevisAdapter().units(Roots.of(root))] == [
        ("train:000000", {"split": "train", "videos": ["vid_a", "vid_b"]}),
        ("valid:000000", {"split": "valid", "videos": ["vid_c"]}),
    ]


def test_samples_and_rejects(root):
    samples, rejects = outcomes(root)
    assert [s.id for s in samples] == ["mevis/train/vid_a_0", "mevis/train/vid_a_1"]
    assert rejects == [
        ("no_target", META + "vid_a.expressions.2"),
        ("object_without_masks", META + "vid_a.expressions.3 anno_id 12"),
        ("mask_missing", META + "vid_b.expressions.0 anno_id 99"),
        ("no_masks", "valid/meta_expressions.json videos.vid_c.expressions.0"),
        # valid/ withholds masks, and the anno_ids with them: still no_masks, not no_target
        ("no_masks", "valid/meta_expressions.json videos.vid_c.expressions.1"),
    ]
    single, multi = samples
    frames = ["train/JPEGImages/vid_a/00000.jpg", "train/JPEGImages/vid_a/00001.jpg", "train/JPEGImages/vid_a/00002.jpg"]
    assert (single.media.path, single.media.frames, single.media.fps) == ("train/JPEGImages/vid_a", frames, 3.0)
    assert (single.media.width, single.media.height, single.task, single.license) == (32, 24, "phrase_caption", "CC-BY-NC-SA-4.0")
    assert frames_of(single.regions[0], "10") == [(0, (2.0, 2.0, 10.0, 8.0)), (1, (8.0, 2.0, 16.0, 8.0)), (2, (14.0, 2.0, 22.0, 8.0))]
    assert [(t.role, t.text) for t in single.conversation] == [
        ("user", "Give a short expression that refers to <obj0> by how it moves in this video."),
        ("assistant", "the block moving to the right")]
    # multi-object: one region per anno_id; object 11 is null on frame 1, so that frame is left out
    assert [frames_of(r, a) for r, a in zip(multi.regions, ["10", "11"])][1] == [(0, (20.0, 14.0, 28.0, 22.0)), (2, (20.0, 14.0, 28.0, 22.0))]
    assert multi.conversation[0].text == "Give a short expression that refers to <obj0> and <obj1> by how they move in this video."
    assert multi.meta == {"video": "vid_a", "exp_id": "1", "obj_id": [0, 1], "anno_id": [10, 11]}
    assert (multi.provenance.file, multi.provenance.locator) == ("train/meta_expressions.json", META + "vid_a.expressions.1")


def test_one_video_per_unit_gives_the_same_outcomes(root, monkeypatch):
    whole = [o.model_dump_json() if hasattr(o, "model_dump_json") else o.to_dict() for o in convert_fixture(MevisAdapter(), root)]
    monkeypatch.setattr(mevis, "VIDEOS_PER_UNIT", 1)
    assert [u.name for u in MevisAdapter().units(Roots.of(root))] == ["train:000000", "train:000001", "valid:000000"]
    again = [o.model_dump_json() if hasattr(o, "model_dump_json") else o.to_dict() for o in convert_fixture(MevisAdapter(), root)]
    assert again == whole


def test_missing_frame_rejects_every_expression_of_its_video(root):
    (root / "train/JPEGImages/vid_a/00001.jpg").unlink()
    samples, rejects = outcomes(root)
    assert samples == []
    assert [r for r in rejects if r[1].startswith(META + "vid_a")] == [
        ("frame_missing", META + "vid_a.expressions.0"), ("frame_missing", META + "vid_a.expressions.1"),
        ("no_target", META + "vid_a.expressions.2"), ("frame_missing", META + "vid_a.expressions.3")]


def test_a_split_without_its_mask_dict_is_no_masks_for_every_expression(root):
    (root / "train/mask_dict.json").unlink()  # e.g. valid_u/ or train/ downloaded without it
    samples, rejects = outcomes(root)
    assert samples == []
    assert [r for r in rejects if r[1].startswith(META)] == [
        ("no_masks", META + f"vid_a.expressions.{e}") for e in range(4)] + [("no_masks", META + "vid_b.expressions.0")]


def test_an_unexpected_failure_is_one_reject_per_expression(root):
    meta = root / "train/meta_expressions.json"
    videos = json.loads(meta.read_text())
    videos["videos"]["vid_b"]["frames"] = ["00000", ["00001"]]  # unsortable: fails in our code, not as a rule
    meta.write_text(json.dumps(videos))
    samples, rejects = outcomes(root)
    assert [s.id for s in samples] == ["mevis/train/vid_a_0", "mevis/train/vid_a_1"]  # same unit, unaffected
    assert rejects[2] == ("adapter_error", META + "vid_b.expressions.0")


def test_objects_phrase():
    assert [objects_phrase(n) for n in (1, 2, 3)] == ["<obj0>", "<obj0> and <obj1>", "<obj0>, <obj1> and <obj2>"]


def test_missing_release_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta_expressions.json"):
        MevisAdapter().units(Roots.of(tmp_path))


def test_a_malformed_video_or_expression_is_its_own_reject(tmp_path):
    """One video without frames and one expression that is a string cost only themselves."""
    MevisAdapter().write_fixture(tmp_path)
    meta = tmp_path / "train/meta_expressions.json"
    data = json.loads(meta.read_text())
    first = next(iter(data["videos"]))
    data["videos"]["broken"] = {"frames": "00000", "expressions": {}}
    data["videos"][first]["expressions"]["99"] = "a dog runs"
    meta.write_text(json.dumps(data))
    samples, rejects = split_outcomes(convert_fixture(MevisAdapter(), tmp_path))
    before, _ = split_outcomes(convert_fixture(MevisAdapter(), _pristine(tmp_path.parent / "pristine")))
    assert [s.id for s in samples] == [s.id for s in before]
    assert [(r.reason, r.locator) for r in rejects if r.reason == "bad_record"] == [
        ("bad_record", f"train/meta_expressions.json videos.{first}.expressions.99"),
        ("bad_record", "train/meta_expressions.json videos.broken"),
    ]


def _pristine(root):
    MevisAdapter().write_fixture(root)
    return root


def test_truncated_or_non_object_meta_file_names_file_and_byte(tmp_path):
    (tmp_path / "train").mkdir()
    meta = tmp_path / "train/meta_expressions.json"
    meta.write_text('{"videos": {"v1": {"frames": [')
    with pytest.raises(ValueError, match=r"meta_expressions.json: truncated JSON at byte 30 \(Expecting value\)$"):
        MevisAdapter().units(Roots.of(tmp_path))
    meta.write_text("[]")
    with pytest.raises(ValueError, match='meta_expressions.json: expected {"videos": {<video>: ...}}'):
        MevisAdapter().units(Roots.of(tmp_path))
