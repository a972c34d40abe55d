"""Osprey-724K adapter (sources/osprey.py) over its native-format fixture."""

import numpy as np
import pytest

from schemas import Reject, masks
from sources import fixtures
from sources.osprey import SHORT_ANSWER, OspreyAdapter
from tests.sources.fixture_outcomes import fixture_outcomes, samples_by_id
from tests.sources.test_registry import split_outcomes

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
        "path '../osprey_short_form.json' resolves outside the source root",
        "no image file at coco_imgs/000000000999.jpg",
    ]


def test_no_release_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Osprey-724K file under"):
        OspreyAdapter().units(tmp_path)


CHAT = [{"from": "human", "value": "What is <region1>?"}, {"from": "gpt", "value": "A box."}]
POLY = [{"segmentation": [fixtures.rect_polygon(A)]}]


@pytest.mark.parametrize("record, reason", [
    ({"file_name": "/etc/passwd", "annotation": POLY, "conversations": CHAT}, "path_escapes_root"),
    ({"file_name": "../../x.jpg", "annotation": POLY, "conversations": CHAT}, "path_escapes_root"),
    ({"file_name": "a.jpg", "conversations": CHAT}, "bad_record"),
    ({"file_name": "a.jpg", "annotation": POLY, "conversations": CHAT, "height": 47, "width": 64}, "image_size_mismatch"),
    ({"file_name": "a.jpg", "annotation": [{"segmentation": None}], "conversations": CHAT}, "bad_mask"),
    ({"file_name": "a.jpg", "annotation": [{"segmentation": [[1, 1, 2, 2]]}], "conversations": CHAT}, "invalid_polygon"),
])
def test_handmade_bad_records(tmp_path, record, reason):
    fixtures.write_image(tmp_path / "coco_imgs/a.jpg", 64, 48)
    with pytest.raises(Reject) as err:
        OspreyAdapter().sample(tmp_path, "osprey_conversation.json", 3, record)
    assert (err.value.reason, err.value.locator) == (reason, "osprey_conversation.json[3]")
