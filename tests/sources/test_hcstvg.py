"""HC-STVG adapter on its native-format fixture: v1 and v2 records, the spread span, trap rejects."""

import json

import pytest

from schemas import Reject
from sources.hcstvg import HcstvgAdapter, person, spread
from sources.roots import Roots
from tests.sources.fixture_outcomes import fixture_outcomes, samples_by_id

V2_TRAPS = [
    ("video_missing", "anno_v2/train_v2.json[51_missing.mp4]"),
    ("video_size_mismatch", "anno_v2/train_v2.json[10_clip_a.mp4]"),
    ("span_out_of_range", "anno_v2/train_v2.json[52_late.mp4]"),
    ("path_escapes_root", "anno_v2/train_v2.json[../53_escape.mp4]"),
    ("empty_caption", "anno_v2/train_v2.json[54_silent.mp4]"),
    ("degenerate_box", "anno_v2/train_v2.json[50_clip_b_flat.mp4]"),
    ("bad_box", "anno_v2/train_v2.json[50_clip_b_bad.mp4] bbox 0"),
    ("bad_record", "anno_v2/train_v2.json[55_no_start.mp4]"),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return fixture_outcomes(HcstvgAdapter(), tmp_path_factory.mktemp("hcstvg"))


def box(frame):
    return tuple(float(v) for v in person(frame))


def test_spread_keeps_ends_and_never_every_frame():
    assert spread(18, 16) == [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17]
    assert spread(3, 16) == [0, 1, 2]
    assert spread(1, 16) == [0]


def test_units_one_per_release_file_found_in_subfolders(tmp_path):
    HcstvgAdapter().write_fixture(tmp_path)
    assert [(u.name, u.spec) for u in HcstvgAdapter().units(Roots.of(tmp_path))] == [
        ("v1_train", {"file": "anno_v1/train.json"}), ("v2_train", {"file": "anno_v2/train_v2.json"})]


def test_v2_sample_spreads_the_tube_over_16_of_its_18_frames(outcomes):
    sample = samples_by_id(outcomes)["hcstvg/v2_train/50_clip_b"]
    assert (sample.task, sample.split, sample.license) == ("video_caption", "train", HcstvgAdapter.license)
    assert sample.media.model_dump() == {"kind": "video", "path": "video/part_1/50_clip_b.mp4", "frames": [],
                                         "num_frames": 20, "fps": 5.0, "timestamps": [], "width": 48, "height": 32}
    (region,) = sample.regions
    assert (region.label, region.prompt, region.mask_origin) == ("person", "box", None)
    # st_frame 2 (1-based) is decoded frame 1; the tube's 18 frames are 1..18
    expected = [1 + k for k in (0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17)]
    assert [f.frame for f in region.frames] == expected
    assert all(f.box == box(f.frame) and f.mask is None for f in region.frames)
    assert [(t.role, t.text) for t in sample.conversation] == [
        ("user", "Explain in detail what <obj0> shows."),
        ("assistant", "The man in the red shirt walks to the right.")]
    assert sample.meta == {"version": "v2", "st_frame": 2, "st_time": 0.2, "ed_time": 3.8, "img_num": 20,
                           "span_frames": 18, "degenerate_boxes": 0}
    assert sample.provenance.locator == "anno_v2/train_v2.json[50_clip_b.mp4]"


def test_v1_sample_reads_width_height_caption_and_skips_an_outside_box(outcomes):
    sample = samples_by_id(outcomes)["hcstvg/v1_train/10_clip_a"]
    assert (sample.media.path, sample.media.width, sample.media.height, sample.media.num_frames) == (
        "video/10_clip_a.mp4", 40, 24, 6)
    # tube frames 1..4 (0-based); frame 2's box lies outside the 40-px-wide frame
    assert [(f.frame, f.box) for f in sample.regions[0].frames] == [(1, box(1)), (3, box(3)), (4, box(4))]
    assert sample.conversation[1].text == "The woman turns and leaves the room."
    assert sample.meta["version"] == "v1" and sample.meta["degenerate_boxes"] == 1


def test_traps_are_rejected_with_reasons_and_counts_add_up(outcomes):
    rejects = [(o.reason, o.locator) for o in outcomes if isinstance(o, Reject)]
    assert rejects == V2_TRAPS
    assert sorted(samples_by_id(outcomes)) == ["hcstvg/v1_train/10_clip_a", "hcstvg/v2_train/50_clip_b"]
    assert len(outcomes) == 2 + len(V2_TRAPS) == 1 + 9  # read (v1 + v2 records) = written + rejected


def test_span_is_checked_against_the_decoded_frames_too(tmp_path):
    HcstvgAdapter().write_fixture(tmp_path)
    path = tmp_path / "anno_v1/train.json"
    data = json.loads(path.read_text())
    data["10_clip_a.mp4"].update(img_num=9, st_frame=4)  # the record claims 9 frames, the clip has 6
    path.write_text(json.dumps(data))
    roots = Roots.of(tmp_path)
    unit = HcstvgAdapter().units(roots)[0]
    (reject,) = HcstvgAdapter().convert(roots, unit)
    assert (reject.reason, reject.message) == ("span_out_of_range", "tube frames 4..7 (1-based) are not all among the video's 6 frames")


def test_missing_release_names_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="none of train.json, test.json, train_v2.json, val_v2.json found"):
        HcstvgAdapter().units(Roots.of(tmp_path))


def test_a_video_listed_twice_is_rejected_each_time_not_overwritten(tmp_path):
    """json keeps the last of two equal keys: both records are rejected rather than one lost silently."""
    HcstvgAdapter().write_fixture(tmp_path)
    path = tmp_path / "anno_v1/train.json"
    text = path.read_text()
    record = json.dumps(json.loads(text)["10_clip_a.mp4"])
    path.write_text(text.rstrip().rstrip("}") + f', "10_clip_a.mp4": {record}}}')
    roots = Roots.of(tmp_path)
    outcomes = [o for u in HcstvgAdapter().units(roots) if u.spec["file"] == "anno_v1/train.json" for o in HcstvgAdapter().convert(roots, u)]
    assert [(o.reason, o.locator) for o in outcomes] == [("duplicate_key", "anno_v1/train.json[10_clip_a.mp4]")] * 2
