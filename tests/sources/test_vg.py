"""Visual Genome region descriptions adapter (sources/vg.py) over its native-format fixture."""

import json

import pytest

from schemas import Reject, Sample
from sources.vg import VgAdapter
from tests.sources.fixture_outcomes import fixture_outcomes
from tests.sources.test_registry import split_outcomes


def dump(outcome):
    return outcome.model_dump() if isinstance(outcome, Sample) else outcome.to_dict()


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    return tmp_path_factory.mktemp("vg")


@pytest.fixture(scope="module")
def outcomes(fixture_root):
    return fixture_outcomes(VgAdapter(), fixture_root)


def test_samples_exact(outcomes):
    samples, _ = split_outcomes(outcomes)
    assert [(s.id, s.media.path, s.media.width, s.media.height) for s in samples] == [
        ("vg/regions/101", "VG_100K/1.jpg", 64, 48),
        ("vg/regions/102", "VG_100K/1.jpg", 64, 48),
        ("vg/regions/201", "VG_100K_2/2.jpg", 64, 48),  # folder from the url
        ("vg/regions/501", "VG_100K_2/5.jpg", 64, 48),  # url names no folder: both tried
    ]
    assert [(r.label, r.prompt, r.mask_origin, [f.model_dump() for f in r.frames])
            for s in samples for r in s.regions] == [
        ("the red box", "box", None, [{"frame": 0, "mask": None, "box": (8.0, 8.0, 24.0, 20.0), "point": None}]),
        # x=-5,y=30,w=20,h=30 clipped to the 64x48 image; NFC turns s + U+0301 into one character
        ("Green grasś at left.", "box", None, [{"frame": 0, "mask": None, "box": (0.0, 30.0, 15.0, 48.0), "point": None}]),
        ("a blue square", "box", None, [{"frame": 0, "mask": None, "box": (30.0, 20.0, 50.0, 40.0), "point": None}]),
        ("corner", "box", None, [{"frame": 0, "mask": None, "box": (0.0, 0.0, 10.0, 10.0), "point": None}]),
    ]
    assert [[(t.role, t.text) for t in s.conversation] for s in samples] == [
        [("user", "Summarise <obj0> in a few words."), ("assistant", "the red box")],
        [("user", "Give a brief description of <obj0>."), ("assistant", "Green grasś at left.")],
        [("user", "Give a brief description of <obj0>."), ("assistant", "a blue square")],
        [("user", "What is in <obj0>? Answer with a short phrase."), ("assistant", "corner")],
    ]
    first = samples[0]
    assert (first.task, first.subset, first.split, first.license) == ("phrase_caption", "regions", "train", "CC-BY-4.0")
    assert first.meta == {"image_id": 1, "region_id": 101, "native_xywh": [8.0, 8.0, 16.0, 12.0]}
    assert first.provenance.model_dump() == {"file": "region_descriptions.json", "locator": "region_descriptions.json[0].regions[0]",
                                             "adapter": "vg", "adapter_version": "1"}


def test_traps_are_rejected_with_reasons(outcomes):
    _, rejects = split_outcomes(outcomes)
    assert [(r.reason, r.locator) for r in rejects] == [
        ("box_outside_image", "region_descriptions.json[0].regions[2]"),  # y = -904
        ("image_empty", "region_descriptions.json[2].regions[0]"),  # zero-byte 3.jpg
        ("image_missing", "region_descriptions.json[3].regions[0]"),
        ("bad_box", "region_descriptions.json[4].regions[1]"),  # region without coordinates
        ("bad_record", "region_descriptions.json[5]"),  # no regions list
        ("bad_record", "region_descriptions.json[6]"),  # id "../../etc/passwd" is no image id
    ]
    assert rejects[0].message == "x,y,w,h [10.0, -904.0, 5.0, 10.0] leaves nothing inside 64x48"


def test_small_units_give_the_same_outcomes(fixture_root, outcomes):
    adapter = VgAdapter()
    adapter.unit_bytes = 150
    units = adapter.units(fixture_root)
    # each image record but the last two (65 bytes together) is over 150 bytes on its own
    assert [(u.name, u.spec["first"], u.spec["count"]) for u in units] == [
        ("regions-00000000", 0, 1), ("regions-00000001", 1, 1), ("regions-00000002", 2, 1),
        ("regions-00000003", 3, 1), ("regions-00000004", 4, 1), ("regions-00000005", 5, 2)]
    assert units[1].spec["images"] == {"2": ["VG_100K_2", 64, 48]}  # only its own images travel
    again = [o for u in units for o in adapter.convert(fixture_root, u)]
    assert [dump(o) for o in again] == [dump(o) for o in outcomes]


def test_image_data_size_disagreeing_with_the_file_is_rejected(tmp_path):
    adapter = VgAdapter()
    adapter.write_fixture(tmp_path)
    image_data = json.loads((tmp_path / "image_data.json").read_text())
    image_data[0]["width"] = 65
    (tmp_path / "image_data.json").write_text(json.dumps(image_data))
    first = next(adapter.convert(tmp_path, adapter.units(tmp_path)[0]))
    assert isinstance(first, Reject) and first.reason == "image_size_mismatch"
    assert first.message == "VG_100K/1.jpg is 64x48, image_data.json says 65x48"


def test_missing_annotation_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="region_descriptions.json is missing"):
        VgAdapter().units(tmp_path)


def test_a_region_without_phrase_is_an_empty_answer_reject():
    image = ("VG_100K/1.jpg", 64, 48)
    with pytest.raises(Reject) as err:
        VgAdapter()._sample(1, image, {"region_id": 9, "x": 1, "y": 1, "width": 4, "height": 4, "phrase": None}, "r[0]")
    assert (err.value.reason, err.value.message) == ("empty_turn", "turn 1 (assistant) is empty")
