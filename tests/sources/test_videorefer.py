"""VideoRefer adapter: both dialects, placeholders in order, streaming units, mp4 and frame folders, traps."""

import json
import shutil

import numpy as np
import pytest

from schemas import Reject, masks
from sources import videorefer
from sources.fixtures import rect_mask
from sources.roots import Roots
from sources.videorefer import FIXTURE_SIZE, VideoReferAdapter, fixture_rect, write_clip
from tests.sources.test_registry import convert_fixture, split_outcomes

FRAMES_A = ["videos/clip_a/00000.jpg", "videos/clip_a/00001.jpg", "videos/clip_a/00002.jpg"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("videorefer")
    VideoReferAdapter().write_fixture(root)
    return root


@pytest.fixture(scope="module")
def outcomes(root):
    samples, rejects = split_outcomes(convert_fixture(VideoReferAdapter(), root))
    return {s.id: s for s in samples}, [(r.reason, r.locator) for r in rejects]


def frames_of(region):
    """[(frame, box)] of a region, after checking each mask decodes to the fixture block."""
    for f in region.frames:
        np.testing.assert_array_equal(masks.decode(f.mask.model_dump()), rect_mask(*FIXTURE_SIZE, fixture_rect(f.frame)).astype(bool))
    return [(f.frame, f.box) for f in region.frames]


def test_units_are_byte_spans_per_file(root):
    units = VideoReferAdapter().units(Roots.of(root))
    assert [(u.name, u.spec["first"], u.spec["count"]) for u in units] == [
        ("pixelrefer-detailed-caption.json:0000000000", 0, 1),
        ("pixelrefer-qa.jsonl:0000000000", 0, 2),
        ("videorefer-detailed-caption-125k.json:0000000000", 0, 2),
        ("videorefer-qa-75k.json:0000000000", 0, 3),
        ("videorefer-short-caption-500k.json:0000000000", 0, 1),
    ]
    text = (root / "videorefer-qa-75k.json").read_bytes()
    spec = units[3].spec
    assert json.loads(b"[" + text[spec["start"] : spec["end"]] + b"]")[0]["id"] == "qa_0"


def test_sample_ids_and_rejects(outcomes):
    samples, rejects = outcomes
    assert sorted(samples) == [
        "videorefer/detailed-caption/det_0", "videorefer/pixelrefer-detailed-caption/det_0",
        "videorefer/pixelrefer-qa/pr_0", "videorefer/qa/qa_0", "videorefer/short-caption/short_0"]
    assert rejects == [
        ("bad_json", "pixelrefer-qa.jsonl[1]"),
        ("object_without_masks", "videorefer-detailed-caption-125k.json[1] object 0"),
        ("placeholder_count_mismatch", "videorefer-qa-75k.json[1]"),
        ("path_escapes_root", "videorefer-qa-75k.json[2]"),
    ]


def test_detailed_caption_on_mp4_with_null_and_unsorted_string_keys(outcomes):
    s = outcomes[0]["videorefer/detailed-caption/det_0"]
    assert (s.task, s.split, s.media.kind, s.media.path) == ("video_caption", "train", "video", "videos/clip_b.mp4")
    assert (s.media.width, s.media.height, s.media.num_frames, s.media.fps, s.media.frames) == (32, 24, 3, 3.0, [])
    (region,) = s.regions
    assert (region.prompt, region.mask_origin) == ("mask", "annotation")
    assert frames_of(region) == [(0, (4.0, 6.0, 12.0, 14.0)), (2, (16.0, 6.0, 24.0, 14.0))]
    assert [(t.role, t.text) for t in s.conversation] == [
        ("user", "Please give a detailed description of <obj0> in the video."),
        ("assistant", "A red block slides to the right.")]
    assert s.meta == {"ratio": 0.67}
    assert (s.provenance.file, s.provenance.locator) == ("videorefer-detailed-caption-125k.json", "videorefer-detailed-caption-125k.json[0]")


def test_both_dialects_give_identical_samples(outcomes):
    a = outcomes[0]["videorefer/detailed-caption/det_0"].model_dump(exclude={"id", "key", "subset", "provenance"})
    b = outcomes[0]["videorefer/pixelrefer-detailed-caption/det_0"].model_dump(exclude={"id", "key", "subset", "provenance"})
    assert a == b


def test_dialects_identical_from_the_same_file(root):
    adapter = VideoReferAdapter()
    rle = masks.encode(rect_mask(*FIXTURE_SIZE, fixture_rect(1)))
    turns = [{"from": "human", "value": "<video>\nWhat is <region>?"}, {"from": "gpt", "value": "A block."}]
    annotation = {"id": "x", "video": "videos/clip_a", "conversations": turns, "annotation": [{"1": {"segmentation": rle}, "2": {"segmentation": None}}]}
    masks_form = {"id": "x", "video": ["videos/clip_a"], "conversations": turns, "masks": [{"1": rle}]}
    args = ("videorefer-qa-75k.json", "qa", "video_qa", 4)
    assert adapter.to_sample(Roots.of(root), annotation, *args) == adapter.to_sample(Roots.of(root), masks_form, *args)


def test_short_caption_polygon_on_frame_folder_with_video_tag_at_end(outcomes):
    s = outcomes[0]["videorefer/short-caption/short_0"]
    assert (s.task, s.media.path, s.media.frames, s.media.fps) == ("phrase_caption", "videos/clip_a", FRAMES_A, 3.0)
    assert frames_of(s.regions[0]) == [(1, (10.0, 6.0, 18.0, 14.0))]
    assert s.conversation[0].text == "Give a short caption of <obj0>."


def test_qa_intro_line_binds_object_names(outcomes):
    s = outcomes[0]["videorefer/qa/qa_0"]
    assert s.task == "video_qa"
    assert [frames_of(r) for r in s.regions] == [[(0, (4.0, 6.0, 12.0, 14.0))], [(2, (16.0, 6.0, 24.0, 14.0))]]
    assert [t.text for t in s.conversation] == [
        "There are <obj0> and <obj1> in the video.\nIs <obj0> left of <obj1>?", "Yes, <obj0> is left of <obj1>."]


def test_jsonl_frame_list_with_timestamps(outcomes):
    s = outcomes[0]["videorefer/pixelrefer-qa/pr_0"]
    assert (s.media.path, s.media.frames, s.media.timestamps, s.media.fps) == ("videos/clip_a", FRAMES_A, [0.0, 0.5, 1.0], None)
    assert frames_of(s.regions[0]) == [(1, (10.0, 6.0, 18.0, 14.0))]


def record(**changes):
    rle = masks.encode(rect_mask(*FIXTURE_SIZE, fixture_rect(0)))
    base = {"id": "t", "video": "videos/clip_a", "annotation": [{"0": {"segmentation": rle}}],
            "conversations": [{"from": "human", "value": "<video>\nWhat is <region>?"}, {"from": "gpt", "value": "A block."}]}
    return {**base, **changes}


@pytest.mark.parametrize("changes, reason", [
    ({"video": "../videos/clip_b.mp4"}, "path_escapes_root"),
    ({"video": "videos/none.mp4"}, "video_missing"),
    ({"video": 7}, "bad_video"),
    ({"annotation": []}, "no_masks"),
    ({"annotation": [{"zero": {"segmentation": None}}]}, "bad_frame_key"),
    ({"annotation": [{"0": {"segmentation": {"size": [10, 10], "counts": "7"}}}]}, "mask_size_mismatch"),
    ({"annotation": [{"0": {"segmentation": {"size": [24, 32], "counts": "0"}}}]}, "bad_mask"),
    ({"conversations": [{"from": "human", "value": "Is <object1> here? <region>"}, {"from": "gpt", "value": "No."}]}, "placeholder_unbound"),
    ({"conversations": [{"from": "human", "value": "What is this?"}, {"from": "gpt", "value": "A block."}]}, "placeholder_count_mismatch"),
    ({"conversations": [{"from": "human", "value": "What is <region>?"}, {"from": "gpt", "value": " "}]}, "empty_turn"),
    ({"conversations": "What is <region>?"}, "bad_turn"),
    # clip_b.mp4's header counts 3 frames; a key too long for int() is out of range, not a crash
    ({"video": "videos/clip_b.mp4", "annotation": [{"3": {"segmentation": None}}]}, "frame_out_of_range"),
    ({"video": "videos/clip_b.mp4", "annotation": [{"1" + "0" * 5000: {"segmentation": None}}]}, "frame_out_of_range"),
    ({"annotation": [{"3": {"segmentation": None}}]}, "frame_out_of_range"),  # the frame folder holds 3
])
def test_record_traps(root, changes, reason):
    with pytest.raises(Reject) as err:
        VideoReferAdapter().to_sample(Roots.of(root), record(**changes), "videorefer-qa-75k.json", "qa", "video_qa", 9)
    assert (err.value.reason, err.value.locator.split(" ")[0]) == (reason, "videorefer-qa-75k.json[9]")


def test_wrapped_ytb_vos_object_and_v1_bracket_placeholder(root):
    rle = masks.encode(rect_mask(*FIXTURE_SIZE, fixture_rect(2)))
    r = record(annotation=[[{"2": {"segmentation": rle}}]],
               conversations=[{"from": "human", "value": "<video>\nWhat is <object3> [<region>] doing? And <object3>?"},
                              {"from": "gpt", "value": "Sliding."}])
    s = VideoReferAdapter().to_sample(Roots.of(root), r, "videorefer-qa-75k.json", "qa", "video_qa", 0)
    assert s.conversation[0].text == "What is <obj0> doing? And <obj0>?"
    assert frames_of(s.regions[0]) == [(2, (16.0, 6.0, 24.0, 14.0))]


def test_small_units_give_the_same_outcomes(root, tmp_path, monkeypatch):
    many = [record(id=f"r{i}") for i in range(40)]
    shutil.copytree(root / "videos", tmp_path / "videos")
    (tmp_path / "videorefer-qa-75k.json").write_text(json.dumps(many, indent=1))
    (tmp_path / "extra.jsonl").write_text("\n".join(json.dumps(r) for r in many) + "\n\n")
    adapter = VideoReferAdapter()
    whole = [o.model_dump_json() for o in convert_fixture(adapter, tmp_path)]
    monkeypatch.setattr(videorefer, "UNIT_BYTES", 3000)
    units = adapter.units(Roots.of(tmp_path))
    assert len(units) > 6 and sum(u.spec["count"] for u in units) == 81  # 40 + 40 lines + 1 blank line
    assert [o.model_dump_json() for o in convert_fixture(adapter, tmp_path)] == whole
    assert [json.loads(w)["id"] for w in whole[:2]] == ["videorefer/extra/r0", "videorefer/extra/r1"]
    assert len(whole) == 80


def test_frame_bound_without_a_frame_count_comes_from_the_duration(tmp_path):
    write_clip(tmp_path / "videos/clip.mkv", "matroska")  # 3 frames at 3 fps, 1 s; Matroska stores no count
    roots, rle = Roots.of(tmp_path), masks.encode(rect_mask(*FIXTURE_SIZE, fixture_rect(2)))
    turns = [{"from": "human", "value": "<video>\nWhat is <region>?"}, {"from": "gpt", "value": "A block."}]
    s = VideoReferAdapter().to_sample(roots, record(video="videos/clip.mkv", annotation=[{"2": rle}], conversations=turns), "qa.json", "qa", "video_qa", 0)
    assert (s.media.num_frames, s.media.fps, frames_of(s.regions[0])) == (None, 3.0, [(2, (16.0, 6.0, 24.0, 14.0))])
    with pytest.raises(Reject) as err:  # 1 s x 3 fps + 1 frame of slack: frames 0-3 may exist
        VideoReferAdapter().to_sample(roots, record(video="videos/clip.mkv", annotation=[{"4": rle}]), "qa.json", "qa", "video_qa", 0)
    assert (err.value.reason, err.value.message, err.value.locator) == (
        "frame_out_of_range", "frame 4 is past the last frame the video can have (3)", "qa.json[0] object 0")


def test_frame_keys_stay_within_int32_when_nothing_bounds_the_video():
    with pytest.raises(Reject) as err:
        VideoReferAdapter._region({"2147483648": None}, 24, 32, None, "x.json[0] object 0")
    assert (err.value.reason, err.value.message) == ("frame_out_of_range", "frame 2147483648 is past the last frame the video can have (2147483647)")


def test_file_roles():
    assert videorefer.file_role("videorefer-short-caption-500k.json") == ("short-caption", "phrase_caption")
    assert videorefer.file_role("my detailed.v2.jsonl") == ("my_detailed_v2", "video_caption")
    assert videorefer.file_role("qa-extra.json") == ("qa-extra", "video_qa")


def test_missing_annotations_and_bad_file_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no \\*.json"):
        VideoReferAdapter().units(Roots.of(tmp_path))
    (tmp_path / "videorefer-qa-75k.json").write_text('{"not": "an array"}')
    with pytest.raises(ValueError, match="videorefer-qa-75k.json: not a JSON array at byte 0"):
        VideoReferAdapter().units(Roots.of(tmp_path))
