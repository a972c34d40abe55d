"""pixelrefer-release adapter: the official training JSONs, placeholders bound in order, traps, task rule."""

import json
import shutil

import numpy as np
import pytest

from schemas import Reject, Sample, Turn, masks
from sources import registry
from sources.fixtures import rect_mask
from sources.release import FIXTURE_SIZE, ReleaseAdapter, clip_rle, image_rle, infer_task
from sources.roots import Roots

IMAGE = "coco/train2017/000000000001.jpg"
FRAMES = ["videos/clip_a/00000.jpg", "videos/clip_a/00001.jpg", "videos/clip_a/00002.jpg"]
STAGE1 = "PixelRefer_stage1_trainingdata.json"
LITE1 = "PixelRefer-Lite_stage1_trainingdata.json"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    ReleaseAdapter().write_fixture(root)
    return root


def convert(root_or_roots):
    adapter, roots = ReleaseAdapter(), Roots.of(root_or_roots)
    return [o for unit in adapter.units(roots) for o in adapter.convert(roots, unit)]


@pytest.fixture(scope="module")
def outcomes(root):
    found = convert(root)
    return {o.id: o for o in found if isinstance(o, Sample)}, [(o.reason, o.locator) for o in found if isinstance(o, Reject)]


def boxes(region, size=FIXTURE_SIZE):
    """[(frame, box)] of a region, after checking every mask decodes to a filled rectangle at its box."""
    for f in region.frames:
        x0, y0, x1, y1 = (int(v) for v in f.box)
        np.testing.assert_array_equal(masks.decode(f.mask.model_dump()), rect_mask(*size, (x0, y0, x1, y1)).astype(bool))
    return [(f.frame, f.box) for f in region.frames]


def test_registered_with_a_layout():
    adapter = registry.get("pixelrefer-release")
    assert isinstance(adapter, ReleaseAdapter) and STAGE1 in adapter.LAYOUT


def test_units_are_byte_spans_of_each_present_file(root):
    units = ReleaseAdapter().units(Roots.of(root))
    assert [(u.name, u.spec["first"], u.spec["count"]) for u in units] == [
        (f"{STAGE1}:0000000000", 0, 7), (f"{LITE1}:0000000000", 0, 4)]
    data = (root / STAGE1).read_bytes()
    assert json.loads(b"[" + data[units[0].spec["start"] : units[0].spec["end"]] + b"]")[2]["id"] == "qa-7"


def test_no_release_file_names_the_expected_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: none of {STAGE1}, "):
        ReleaseAdapter().units(Roots.of(tmp_path))


def test_samples_and_rejects_add_up(outcomes):
    samples, rejects = outcomes
    assert sorted(samples) == [
        "pixelrefer-release/pixelrefer-lite-stage1/0", "pixelrefer-release/pixelrefer-lite-stage1/1",
        "pixelrefer-release/pixelrefer-lite-stage1/2", "pixelrefer-release/pixelrefer-stage1/0",
        "pixelrefer-release/pixelrefer-stage1/1", "pixelrefer-release/pixelrefer-stage1/2"]
    assert rejects == [
        ("region_mask_mismatch", f"{STAGE1}[3]"),
        ("image_missing", f"{STAGE1}[4]"),
        ("polygon_without_size", f"{STAGE1}[5]"),
        ("path_escapes_root", f"{STAGE1}[6]"),
        ("region_mask_mismatch", f"{LITE1}[3]"),  # one <region> per (object, frame) is not read
    ]
    # read = written + rejected: 7 + 4 records in the two files
    assert len(samples) + len(rejects) == 11


def test_image_recognition_with_compressed_rle(outcomes):
    s = outcomes[0]["pixelrefer-release/pixelrefer-stage1/0"]
    assert (s.task, s.subset, s.media.kind, s.media.path, s.media.width, s.media.height) == (
        "recognition", "pixelrefer-stage1", "image", IMAGE, 32, 24)
    assert [boxes(r) for r in s.regions] == [[(0, (2.0, 2.0, 12.0, 10.0))]]
    assert [(t.role, t.text) for t in s.conversation] == [("user", "What is <obj0>?"), ("assistant", "A red block.")]
    assert s.meta == {"file": STAGE1}
    assert (s.provenance.file, s.provenance.locator, s.provenance.adapter) == (STAGE1, f"{STAGE1}[0]", "pixelrefer-release")


def test_polygon_with_size_and_a_leading_gpt_turn_dropped(outcomes):
    s = outcomes[0]["pixelrefer-release/pixelrefer-stage1/1"]
    assert (s.task, s.media.path) == ("detailed_caption", IMAGE)
    assert [boxes(r) for r in s.regions] == [[(0, (16.0, 8.0, 30.0, 20.0))]]
    assert s.conversation[0].text == "Please describe <obj0> in detail."
    assert s.meta == {"file": STAGE1, "dropped_leading_turns": 1}


def test_named_regions_bind_in_token_order_and_keep_their_names(outcomes):
    s = outcomes[0]["pixelrefer-release/pixelrefer-stage1/2"]
    assert s.task == "region_qa"
    # mask 0 is the uncompressed RLE of the green block, mask 1 the red one
    assert [boxes(r) for r in s.regions] == [[(0, (16.0, 8.0, 30.0, 20.0))], [(0, (2.0, 2.0, 12.0, 10.0))]]
    assert [t.text for t in s.conversation] == [
        "There are two regions in the image: <obj0>, <obj1>. Which one is larger?", "<obj0> is larger than <obj1>.",
        "Is <obj1> red?", "Yes, <obj1> is red."]
    assert s.meta == {"file": STAGE1, "id": "qa-7"}


def test_frame_folder_video_with_unsorted_frame_keys(outcomes):
    s = outcomes[0]["pixelrefer-release/pixelrefer-lite-stage1/0"]
    assert (s.task, s.media.path, s.media.frames, s.media.fps, s.media.timestamps) == (
        "video_caption", "videos/clip_a", FRAMES, 3.0, [])
    assert [boxes(r) for r in s.regions] == [[(0, (4.0, 6.0, 12.0, 14.0)), (2, (16.0, 6.0, 24.0, 14.0))]]
    assert s.conversation[0].text == "Describe <obj0> in the video."


def test_frame_list_with_timestamps(outcomes):
    s = outcomes[0]["pixelrefer-release/pixelrefer-lite-stage1/1"]
    assert (s.task, s.media.path, s.media.frames, s.media.timestamps, s.media.fps) == (
        "video_qa", "videos/clip_a", FRAMES, [0.0, 0.5, 1.0], None)
    assert [boxes(r) for r in s.regions] == [[(1, (10.0, 6.0, 18.0, 14.0))]]


def test_videorefer_700k_dialect_on_an_mp4(outcomes):
    s = outcomes[0]["pixelrefer-release/pixelrefer-lite-stage1/2"]
    assert (s.task, s.media.path, s.media.num_frames, s.media.fps, s.media.frames) == (
        "phrase_caption", "videos/clip_b.mp4", 3, 3.0, [])
    assert [boxes(r) for r in s.regions] == [[(0, (4.0, 6.0, 12.0, 14.0))]]  # the null frame is absent
    assert [t.text for t in s.conversation] == ["Give a short caption of <obj0>.", "a sliding red block"]


def test_media_in_a_declared_media_root(root, tmp_path):
    """The JSONs in one folder, the media in another: paths resolve against the media root."""
    (tmp_path / "ann").mkdir()
    for name in (STAGE1, LITE1):
        shutil.copy(root / name, tmp_path / "ann" / name)
    shutil.copytree(root / "coco", tmp_path / "media" / "coco")
    shutil.copytree(root / "videos", tmp_path / "media" / "videos")
    found = convert(Roots.of(tmp_path / "ann", [tmp_path / "media"]))
    assert [o.id if isinstance(o, Sample) else o.reason for o in found] == [
        o.id if isinstance(o, Sample) else o.reason for o in convert(root)]


def record(**changes):
    base = {"image": IMAGE, "masks": [image_rle(0)],
            "conversations": [{"from": "human", "value": "<image>\nWhat is <region>?"}, {"from": "gpt", "value": "A block."}]}
    return {**base, **changes}



@pytest.mark.parametrize("changes, reason", [
    ({"video": "videos/clip_b.mp4"}, "bad_media"),  # both image and video
    ({"image": ["a.jpg", "b.jpg"]}, "bad_media"),
    ({"masks": []}, "no_masks"),
    ({"conversations": "What is <region>?"}, "bad_turn"),
    ({"conversations": [{"from": "gpt", "value": "A block."}]}, "bad_turn"),
    ({"conversations": [{"from": "human", "value": "Is <region0> here? <region>"}, {"from": "gpt", "value": "No."}]},
     "placeholder_unbound"),
    ({"conversations": [{"from": "human", "value": "What is this?"}, {"from": "gpt", "value": "A block."}]},
     "region_mask_mismatch"),
    ({"height": 48, "width": 64}, "mask_size_mismatch"),
    ({"masks": [{"size": [10, 10], "counts": "7"}]}, "mask_size_mismatch"),
    ({"masks": [None]}, "object_without_masks"),
    ({"masks": [{"size": [24, 32], "counts": "0"}]}, "bad_mask"),  # runs cover too few pixels
])
def test_record_traps(root, changes, reason):
    with pytest.raises(Reject) as err:
        ReleaseAdapter().outcomes(Roots.of(root), (STAGE1, 9, record(**changes)), f"{STAGE1}[9]")
    assert (err.value.reason, err.value.locator.split(" ")[0]) == (reason, f"{STAGE1}[9]")


@pytest.mark.parametrize("changes, reason", [
    ({"video": "videos/none.mp4"}, "video_missing"),
    ({"video": ["videos/clip_a/00000.jpg", "videos/clip_a/00009.jpg"]}, "video_missing"),
    ({"video": 7}, "bad_media"),
    ({"masks": [{"x": clip_rle(0)}]}, "bad_frame_key"),
    ({"masks": ["not a dict"]}, "bad_annotation"),
    ({"masks": [{"0": [[4.0, 6.0, 12.0, 6.0, 12.0, 14.0]]}]}, "polygon_without_size"),
])
def test_video_traps(root, changes, reason):
    video = {"video": ["videos/clip_a"], "masks": [{"0": clip_rle(0)}],
             "conversations": [{"from": "human", "value": "<video>\nWhat is <region>?"}, {"from": "gpt", "value": "A block."}]}
    with pytest.raises(Reject) as err:
        ReleaseAdapter().outcomes(Roots.of(root), (LITE1, 2, {**video, **changes}), f"{LITE1}[2]")
    assert (err.value.reason, err.value.locator.split(" ")[0]) == (reason, f"{LITE1}[2]")


def test_wrapped_ytb_vos_object_and_bracketed_region(root):
    r = {"video": "videos/clip_a", "annotation": [[{"2": {"segmentation": clip_rle(2)}}]],
         "conversations": [{"from": "human", "value": "<video>\nWhat is <object3> [<region>] doing? And <object3>?"},
                           {"from": "gpt", "value": "Sliding."}]}
    s = ReleaseAdapter().outcomes(Roots.of(root), (LITE1, 5, r), f"{LITE1}[5]")
    assert s.conversation[0].text == "What is <obj0> doing? And <obj0>?"
    assert [boxes(reg) for reg in s.regions] == [[(2, (16.0, 6.0, 24.0, 14.0))]]


def turns(*texts):
    return [Turn(role="assistant" if i % 2 else "user", text=t) for i, t in enumerate(texts)]


LONG = " ".join(["word"] * 21)


@pytest.mark.parametrize("kind, texts, task", [
    ("image", ("What is <obj0>?", "a red car"), "recognition"),
    ("image", ("Name <obj0>.", "car", "And <obj1>?", "bus"), "recognition"),
    ("image", ("What is <obj0>?", "a red car parked"), "region_qa"),
    ("image", ("Describe <obj0>.", "a red car parked by the road", "Is it new?", "Yes."), "region_qa"),
    ("image", ("Describe <obj0> briefly.", "a red car parked by the road"), "phrase_caption"),
    ("image", ("Describe <obj0>.", " ".join(["word"] * 20)), "phrase_caption"),
    ("image", ("Describe <obj0>.", LONG), "detailed_caption"),
    ("video", ("What is <obj0>?", "a car"), "video_qa"),
    ("video", ("Caption <obj0>.", "a car"), "phrase_caption"),
    ("video", ("Describe <obj0>.", LONG), "video_caption"),
    ("video", ("Describe <obj0>.", LONG, "Why?", "No idea."), "video_qa"),
])
def test_task_rule(kind, texts, task):
    assert infer_task(kind, turns(*texts)) == task
