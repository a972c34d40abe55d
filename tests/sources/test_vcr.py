"""VCR adapter on its native-format fixture: mention order, masks and boxes, turns, trap rejects."""

import json

import numpy as np
import pytest

from schemas import Reject, masks
from sources.fixtures import rect_mask
from sources.jsonarray import JsonFileError
from sources.roots import Roots
from sources.vcr import CAR, DOG, PERSON_A, PERSON_B, VcrAdapter, _Mentions
from tests.sources.fixture_outcomes import fixture_outcomes, samples_by_id

TRAPS = [
    ("bad_object_ref", "train.jsonl[2]"),
    ("bad_label", "train.jsonl[3]"),
    ("metadata_missing", "train.jsonl[4]"),
    ("image_missing", "train.jsonl[5]"),
    ("invalid_polygon", "train.jsonl[6] object 1"),
    ("bad_json", "train.jsonl[7]"),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return fixture_outcomes(VcrAdapter(), tmp_path_factory.mktemp("vcr"))


def test_detokenising_and_mention_order():
    mentions = _Mentions(["person", "person", "car", "dog"], "x")
    assert mentions.text(["Is", [2], "next", "to", [0, 1, 3], "?"], "q") == "Is <obj0> next to <obj1>, <obj2> and <obj3>?"
    assert mentions.text([[1], "is", "n't", "moving", ";", "(", "see", [2], ")", "it", "'s", "parked", "."], "a") == (
        "<obj2> isn't moving; (see <obj0>) it's parked.")
    assert mentions.order == {2: 0, 0: 1, 1: 2, 3: 3}


def test_sample_regions_in_order_of_first_mention(outcomes):
    samples = samples_by_id(outcomes)
    assert sorted(samples) == ["vcr/train/train-0", "vcr/val/val-0"]
    sample = samples["vcr/train/train-0"]
    assert (sample.task, sample.split, sample.subset) == ("region_qa", "train", "train")
    assert (sample.media.path, sample.media.width, sample.media.height) == ("vcr1images/1054_Harry_Potter/shot_a@0.jpg", 64, 48)
    # question names object 0, the answer object 2, the rationale [1, 2]: native 0, 2, 1
    assert [(r.label, r.prompt) for r in sample.regions] == [("person", "mask"), ("car", "mask"), ("person", "box")]
    for region, rect in zip(sample.regions[:2], [PERSON_A, CAR]):  # the car's two polygons merge
        assert region.frames[0].box == tuple(float(v) for v in rect)
        np.testing.assert_array_equal(masks.decode(region.frames[0].mask.model_dump()), rect_mask(64, 48, rect).astype(bool))
    box_region = sample.regions[2].frames[0]  # object 1 has no polygon: its box stays a box
    assert (box_region.box, box_region.mask) == (tuple(float(v) for v in PERSON_B), None)
    assert [(t.role, t.text) for t in sample.conversation] == [
        ("user", "What is <obj0> doing?"),
        ("assistant", "<obj0> is waiting for <obj1>."),
        ("user", "Why do you think so?"),
        ("assistant", "<obj0> is looking at <obj1>, and <obj2> and <obj1> aren't moving."),
    ]
    assert sample.meta == {"annot_id": "train-0", "movie": "1054_Harry_Potter", "question_number": 0, "objects": [0, 2, 1]}
    assert sample.provenance.locator == "train.jsonl[0]"

    val = samples["vcr/val/val-0"]
    assert [(t.role, t.text) for t in val.conversation] == [
        ("user", "What does <obj0> want?"), ("assistant", "<obj0> wants food."),
        ("user", "What is the rationale for that answer?"), ("assistant", "Dogs beg (often).")]
    assert val.regions[0].frames[0].box == tuple(float(v) for v in DOG)


def test_traps_are_rejected_and_test_jsonl_is_not_read(outcomes):
    assert [(o.reason, o.locator) for o in outcomes if isinstance(o, Reject)] == TRAPS
    assert len(outcomes) == 2 + len(TRAPS)  # 7 train lines (one blank line is no record) + 1 val line


def edited(tmp_path, change):
    VcrAdapter().write_fixture(tmp_path)
    meta_path = tmp_path / "vcr1images/1054_Harry_Potter/shot_a@0.json"
    meta = json.loads(meta_path.read_text())
    change(meta)
    meta_path.write_text(json.dumps(meta))
    roots = Roots.of(tmp_path)
    return [o for u in VcrAdapter().units(roots) for o in VcrAdapter().convert(roots, u)][0]


def test_metadata_traps(tmp_path):
    assert edited(tmp_path / "a", lambda m: m["boxes"].pop()).reason == "object_count_mismatch"
    assert edited(tmp_path / "b", lambda m: m.update(width=65)).reason == "image_size_mismatch"
    assert edited(tmp_path / "c", lambda m: m.update(height="48")).reason == "bad_metadata"
    first = edited(tmp_path / "d", lambda m: m["segms"].__setitem__(1, []) or m["boxes"].__setitem__(1, [70, 0, 80, 10, 1]))
    assert (first.reason, first.locator) == ("degenerate_box", "train.jsonl[0] object 1")


def test_units_are_line_spans(tmp_path):
    VcrAdapter().write_fixture(tmp_path)
    assert [(u.name, u.spec["file"], u.spec["first"], u.spec["count"]) for u in VcrAdapter().units(Roots.of(tmp_path))] == [
        ("train-00000000", "train.jsonl", 0, 8), ("val-00000000", "val.jsonl", 0, 1)]


def test_an_empty_jsonl_file_is_a_one_line_error(tmp_path):
    """An empty val.jsonl is a broken download, not a release without records."""
    VcrAdapter().write_fixture(tmp_path)
    (tmp_path / "val.jsonl").write_bytes(b"")
    with pytest.raises(JsonFileError, match=r"val.jsonl: empty file at byte 0 \(expected JSON lines\)$"):
        VcrAdapter().units(Roots.of(tmp_path))
