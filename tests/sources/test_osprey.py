"""Osprey-724K adapter (sources/osprey.py) over its native-format fixture."""

import json
import shutil

import numpy as np
import pytest

from schemas import Reject, Sample, masks
from sources import fixtures, osprey
from sources.common import image_size
from sources.jsonrecords import JsonRecord
from sources.osprey import IMAGES, SHORT_ANSWER, OspreyAdapter
from sources.roots import Roots
from tests.sources.fixture_outcomes import fixture_outcomes, samples_by_id
from tests.sources.test_registry import convert_fixture, split_outcomes

A, B = (8, 8, 24, 20), (30, 20, 50, 40)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return fixture_outcomes(OspreyAdapter(), tmp_path_factory.mktemp("osprey"))


def texts(sample):
    return [(t.role, t.text) for t in sample.conversation]


def test_sample_ids_tasks_and_images(outcomes):
    assert [(s.id, s.task, s.media.path) for s in samples_by_id(outcomes).values()] == [
        ("osprey/conversation/0", "region_qa", "coco_imgs/000000000101.jpg"),  # 2014 name -> 2017 basename
        ("osprey/conversation/1", "region_qa", "coco_imgs/000000000101.jpg"),
        ("osprey/detail_description/0", "detailed_caption", "coco_imgs/000000000101.jpg"),
        ("osprey/detail_description/2", "detailed_caption", "coco_imgs/000000000101.jpg"),
        ("osprey/detail_description/3", "detailed_caption", "coco_imgs/000000000101.jpg"),
        ("osprey/part_level/0", "region_qa", "coco_imgs/COCO_train2014_000000000102.jpg"),  # 2014 name present
        ("osprey/lvis_pos_neg/0", "recognition", "coco_imgs/000000000103.jpg"),
        ("osprey/short_form/0", "region_qa", "coco_imgs/COCO_train2014_000000000102.jpg"),
    ]
    assert {s.license for s in samples_by_id(outcomes).values()} == {"CC-BY-NC-4.0"}


def test_masks_decode_to_the_drawn_rectangles(outcomes):
    expected = {
        "osprey/conversation/0": [A, B],  # polygon and compressed RLE; the unnamed third region is dropped
        "osprey/detail_description/0": [A, B],
        "osprey/lvis_pos_neg/0": [A],  # uncompressed RLE
        "osprey/short_form/0": [A, B],
    }
    samples = samples_by_id(outcomes)
    for sample_id, rects in expected.items():
        regions = samples[sample_id].regions
        assert [(r.prompt, r.mask_origin) for r in regions] == [("mask", "annotation")] * len(rects)
        for region, rect in zip(regions, rects):
            frame = region.frames[0]
            assert np.array_equal(masks.decode(frame.mask.model_dump()), fixtures.rect_mask(64, 48, rect).astype(bool))
            assert frame.box == tuple(float(v) for v in rect)


def test_conversation_text_after_dialect_mapping(outcomes):
    samples = samples_by_id(outcomes)
    assert texts(samples["osprey/conversation/0"]) == [
        ("user", "What is <obj0> next to <obj1>?"), ("assistant", "<obj0> sits beside <obj1>.")]
    assert samples["osprey/conversation/0"].meta == {
        "osprey_id": 101, "file_name": "COCO_train2014_000000000101.jpg", "unreferenced_regions": [3]}
    # a leading gpt turn is dropped; `<region1.` is a repairable typo
    assert texts(samples["osprey/conversation/1"]) == [("user", "What colour is <obj0>"), ("assistant", "Red.")]
    assert samples["osprey/conversation/1"].meta["dropped_leading_turns"] == 1
    assert texts(samples["osprey/detail_description/0"]) == [
        ("user", "Give a detailed description of <obj0>."), ("assistant", "A red box in the top left."),
        ("user", "Provide a thorough description of <obj1>."), ("assistant", "A blue square, right of <obj0>.")]
    # `<region of2>` names region 2; the empty third entry is ignored, so region 3 is unnamed
    assert texts(samples["osprey/detail_description/2"]) == [
        ("user", "Explain in detail what <obj0> shows."), ("assistant", "A red box."),
        ("user", "Describe <obj1> in detail."), ("assistant", "A blue square.")]
    assert samples["osprey/detail_description/2"].meta == {
        "osprey_id": 101, "file_name": "COCO_train2014_000000000101.jpg", "unreferenced_regions": [3],
        "ignored_description_entries": 1}
    # a second entry for a record with one annotation is ignored, as Osprey's loader does
    assert texts(samples["osprey/detail_description/3"]) == [("user", "Describe <obj0> in detail."), ("assistant", "A red box.")]
    assert samples["osprey/detail_description/3"].meta["ignored_description_entries"] == 1
    assert texts(samples["osprey/part_level/0"]) == [
        ("user", "What part of the object is <obj0>?" + SHORT_ANSWER), ("assistant", "handle")]
    assert texts(samples["osprey/lvis_pos_neg/0"]) == [("user", "<obj0> Is it a mug?"), ("assistant", "No, it is a box.")]
    # only region 2 is named first, yet regions keep native order
    assert texts(samples["osprey/short_form/0"]) == [
        ("user", "What colour is <obj1>?" + SHORT_ANSWER), ("assistant", "blue"),
        ("user", "And <obj0>?" + SHORT_ANSWER), ("assistant", "red")]


def test_traps_are_rejected_with_reasons(outcomes):
    _, rejects = split_outcomes(outcomes)
    assert [(r.reason, r.locator) for r in rejects] == [
        ("region_index_out_of_range", "osprey_conversation.json[2]"),
        ("region_tag_malformed", "osprey_conversation.json[3]"),  # bare <region>
        ("path_escapes_root", "osprey_conversation.json[4]"),  # ../ file_name
        ("image_missing", "osprey_conversation.json[5]"),
        ("mask_size_mismatch", "osprey_conversation.json[6]"),
        ("region_tag_malformed", "osprey_detail_description.json[1]"),  # description without a tag
    ]
    assert [r.message for r in rejects[2:4]] == [
        "path '../osprey_short_form.json' is empty, absolute or climbs with '..'",
        "no image file at coco_imgs/000000000999.jpg",  # a 2014 name is looked for under its 2017 name first
    ]


def test_no_release_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Osprey-724K file under"):
        OspreyAdapter().units(Roots.of(tmp_path))


CHAT = [{"from": "human", "value": "What is <region1>?"}, {"from": "gpt", "value": "A box."}]
POLY = [{"segmentation": [fixtures.rect_polygon(A)]}]


def convert_record(root, record, file="osprey_conversation.json"):
    """The outcome of one hand-written record (index 3 of `file`), next to a 64x48 `coco_imgs/a.jpg`."""
    fixtures.write_image(root / "coco_imgs/a.jpg", 64, 48)
    return OspreyAdapter().outcomes(Roots.of(root), JsonRecord(file, 3, record), f"{file}[3]")


@pytest.mark.parametrize("record, reason", [
    ({"file_name": "/etc/passwd", "annotation": POLY, "conversations": CHAT}, "path_escapes_root"),
    ({"file_name": "../../x.jpg", "annotation": POLY, "conversations": CHAT}, "path_escapes_root"),
    ({"file_name": "a.jpg", "conversations": CHAT}, "bad_record"),
    ({"file_name": 7, "annotation": POLY, "conversations": CHAT}, "bad_record"),
    (["a.jpg", POLY, CHAT], "bad_record"),
    ({"file_name": "a.jpg", "annotation": POLY, "conversations": CHAT, "height": 47, "width": 64}, "image_size_mismatch"),
    ({"file_name": "a.jpg", "annotation": POLY, "conversations": CHAT, "height": 48, "width": True}, "image_size_mismatch"),
    ({"file_name": "a.jpg", "annotation": [{"segmentation": None}], "conversations": CHAT}, "bad_mask"),
    ({"file_name": "a.jpg", "annotation": ["not an object"], "conversations": CHAT}, "bad_mask"),
    ({"file_name": "a.jpg", "annotation": [{"segmentation": [[1, 1, 2, 2]]}], "conversations": CHAT}, "invalid_polygon"),
    ({"file_name": "a.jpg", "annotation": [{"segmentation": [[1, 1, 9, 1, 9, float("nan")]]}], "conversations": CHAT}, "bad_mask"),
    ({"file_name": "a.jpg", "annotation": POLY, "conversations": [CHAT[0], {"from": "gpt", "value": "A \ud800."}]}, "invalid_text"),
])
def test_handmade_bad_records(tmp_path, record, reason):
    with pytest.raises(Reject) as err:
        convert_record(tmp_path, record)
    assert (err.value.reason, err.value.locator) == (reason, "osprey_conversation.json[3]")


@pytest.mark.parametrize("description, reason, message", [
    ("<region1>: A box.", "bad_record", "expected a `description` list"),
    ([None, "<region2>: A box."], "bad_record", "description 0 is NoneType, not a string"),
    (["", "<region2>: A box."], "region_tag_malformed", "description 0 does not start with <regionN>: ''"),  # not trailing
    (["  ", ""], "bad_record", "no non-empty `description` entry among 2"),
    ([], "bad_record", "no non-empty `description` entry among 0"),
])
def test_bad_descriptions(tmp_path, description, reason, message):
    record = {"file_name": "a.jpg", "annotation": POLY * 2, "description": description}
    with pytest.raises(Reject) as err:
        convert_record(tmp_path, record, "osprey_detail_description.json")
    assert (err.value.reason, err.value.message, err.value.locator) == (reason, message, "osprey_detail_description.json[3]")


def test_an_unexpected_failure_is_one_adapter_error(tmp_path, monkeypatch):
    def fail_on_103(roots, path, locator):
        if path.endswith("103.jpg"):
            raise OSError("disk gone")
        return image_size(roots, path, locator)

    monkeypatch.setattr(osprey, "image_size", fail_on_103)
    outcomes = fixture_outcomes(OspreyAdapter(), tmp_path)
    read = sum(len(json.loads(f.read_text())) for f in tmp_path.glob("osprey_*.json"))
    samples, rejects = split_outcomes(outcomes)
    assert (read, len(samples), len(rejects)) == (14, 7, 7)
    assert [(r.reason, r.locator, r.message) for r in rejects if r.reason == "adapter_error"] == [
        ("adapter_error", "osprey_lvis_positive_negative.json[0]", "OSError: disk gone")]


def dumps(outcomes, path=lambda p: p):
    """Outcomes as plain data, each sample's media path mapped by `path`."""
    return [o.model_dump() | {"media": o.media.model_dump() | {"path": path(o.media.path)}} if isinstance(o, Sample)
            else o.to_dict() for o in outcomes]


def test_one_coco_folder_serves_the_images(tmp_path, outcomes):
    """Annotations alone in one folder, the images in a plain COCO folder (2017 names, and a 2014 one)."""
    OspreyAdapter().write_fixture(tmp_path / "osprey")
    moves = {"000000000101.jpg": "train2017/000000000101.jpg", "000000000103.jpg": "val2017/000000000103.jpg",
             "COCO_train2014_000000000102.jpg": "train2014/COCO_train2014_000000000102.jpg"}
    for name, place in moves.items():
        (tmp_path / "coco" / place).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "osprey" / IMAGES / name).rename(tmp_path / "coco" / place)
    (tmp_path / "osprey" / IMAGES).rmdir()
    separate = convert_fixture(OspreyAdapter(), Roots.of(tmp_path / "osprey", media=[tmp_path / "coco"]))
    assert dumps(separate) == dumps(outcomes, lambda p: moves[p.removeprefix(f"{IMAGES}/")])


@pytest.mark.parametrize("declared", [True, False])
def test_a_symlinked_image_folder_must_lead_into_a_declared_root(tmp_path, outcomes, declared):
    OspreyAdapter().write_fixture(tmp_path / "osprey")
    shutil.move(tmp_path / "osprey" / IMAGES, tmp_path / "other" / IMAGES)
    (tmp_path / "osprey" / IMAGES).symlink_to(tmp_path / "other" / IMAGES, target_is_directory=True)
    linked = convert_fixture(OspreyAdapter(), Roots.of(tmp_path / "osprey", media=[tmp_path / "other"] if declared else []))
    if declared:
        assert dumps(linked) == dumps(outcomes)
    else:  # every record is shaped well enough to reach its image
        assert [o.reason for o in linked] == ["path_escapes_root"] * 14
