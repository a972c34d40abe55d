"""Visual Genome region descriptions adapter (sources/vg.py) over its native-format fixture."""

import json

import pytest

from schemas import Reject, Sample
from sources import vg
from sources.common import normalize_text
from sources.roots import Roots
from sources.vg import VgAdapter
from tests.sources.fixture_outcomes import fixture_outcomes
from tests.sources.test_registry import convert_fixture, split_outcomes


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
        ("vg/regions/701", "VG_100K/7.jpg", 64, 48),  # v1.0 shape: regions keyed id / image
        ("vg/regions/704", "VG_100K/7.jpg", 64, 48),  # after two bad region ids of the same image
    ]
    assert [(r.label, r.prompt, r.mask_origin, [f.model_dump() for f in r.frames])
            for s in samples for r in s.regions] == [
        ("the red box", "box", None, [{"frame": 0, "mask": None, "box": (8.0, 8.0, 24.0, 20.0), "point": None}]),
        # x=-5,y=30,w=20,h=30 clipped to the 64x48 image; NFC turns s + U+0301 into one character
        ("Green grasś at left.", "box", None, [{"frame": 0, "mask": None, "box": (0.0, 30.0, 15.0, 48.0), "point": None}]),
        ("a blue square", "box", None, [{"frame": 0, "mask": None, "box": (30.0, 20.0, 50.0, 40.0), "point": None}]),
        ("corner", "box", None, [{"frame": 0, "mask": None, "box": (0.0, 0.0, 10.0, 10.0), "point": None}]),
        ("a red box", "box", None, [{"frame": 0, "mask": None, "box": (8.0, 8.0, 24.0, 20.0), "point": None}]),
        ("the whole picture", "box", None, [{"frame": 0, "mask": None, "box": (0.0, 0.0, 64.0, 48.0), "point": None}]),
    ]
    assert [[(t.role, t.text) for t in s.conversation] for s in samples] == [
        [("user", "Summarise <obj0> in a few words."), ("assistant", "the red box")],
        [("user", "Give a brief description of <obj0>."), ("assistant", "Green grasś at left.")],
        [("user", "Give a brief description of <obj0>."), ("assistant", "a blue square")],
        [("user", "What is in <obj0>? Answer with a short phrase."), ("assistant", "corner")],
        [("user", "Describe <obj0> in a short phrase."), ("assistant", "a red box")],
        [("user", "What does <obj0> show? Reply briefly."), ("assistant", "the whole picture")],
    ]
    first = samples[0]
    assert (first.task, first.subset, first.split, first.license) == ("phrase_caption", "regions", "train", "CC-BY-4.0")
    assert first.meta == {"image_id": 1, "region_id": 101, "native_xywh": [8.0, 8.0, 16.0, 12.0]}
    assert first.provenance.model_dump() == {"file": "region_descriptions.json", "locator": "region_descriptions.json[0].regions[0]",
                                             "adapter": "vg", "adapter_version": "2"}
    assert samples[4].meta == {"image_id": 7, "region_id": 701, "native_xywh": [8.0, 8.0, 16.0, 12.0]}


def test_traps_are_rejected_with_reasons(outcomes):
    _, rejects = split_outcomes(outcomes)
    assert [(r.reason, r.locator) for r in rejects] == [
        ("box_outside_image", "region_descriptions.json[0].regions[2]"),  # y = -904
        ("image_empty", "region_descriptions.json[2].regions[0]"),  # zero-byte 3.jpg
        ("image_missing", "region_descriptions.json[3].regions[0]"),
        ("bad_box", "region_descriptions.json[4].regions[1]"),  # region without coordinates
        ("bad_record", "region_descriptions.json[5]"),  # no regions list
        ("bad_record", "region_descriptions.json[6]"),  # id "../../etc/passwd" is no image id
        ("bad_region_id", "region_descriptions.json[7].regions[1]"),  # id true
        ("bad_region_id", "region_descriptions.json[7].regions[2]"),  # id 703.5
    ]
    assert rejects[0].message == "x,y,w,h [10.0, -904.0, 5.0, 10.0] leaves nothing inside 64x48"
    assert [r.message for r in rejects[-2:]] == ["region id True is not an integer", "region id 703.5 is not an integer"]


def test_small_units_give_the_same_outcomes(fixture_root, outcomes):
    adapter = VgAdapter()
    adapter.unit_bytes = 150
    roots = Roots.of(fixture_root)
    units = adapter.units(roots)
    # each image record but records 5 and 6 (65 bytes together) is over 150 bytes on its own
    assert [(u.name, u.spec["first"], u.spec["count"]) for u in units] == [
        ("regions-00000000", 0, 1), ("regions-00000001", 1, 1), ("regions-00000002", 2, 1),
        ("regions-00000003", 3, 1), ("regions-00000004", 4, 1), ("regions-00000005", 5, 3)]
    assert units[1].spec["images"] == {"2": ["VG_100K_2", 64, 48]}  # only its own images travel
    again = [o for u in units for o in adapter.convert(roots, u)]
    assert [dump(o) for o in again] == [dump(o) for o in outcomes]


def test_images_in_a_declared_media_root(tmp_path, outcomes):
    VgAdapter().write_fixture(tmp_path / "vg")
    (tmp_path / "images").mkdir()
    for folder in vg.FOLDERS:
        (tmp_path / "vg" / folder).rename(tmp_path / "images" / folder)
    roots = Roots.of(tmp_path / "vg", media=[tmp_path / "images"])
    assert [dump(o) for o in convert_fixture(VgAdapter(), roots)] == [dump(o) for o in outcomes]


def test_image_data_size_disagreeing_with_the_file_is_rejected(tmp_path):
    adapter = VgAdapter()
    adapter.write_fixture(tmp_path)
    image_data = json.loads((tmp_path / "image_data.json").read_text())
    image_data[0]["width"] = 65
    (tmp_path / "image_data.json").write_text(json.dumps(image_data))
    first = next(adapter.convert(tmp_path, adapter.units(Roots.of(tmp_path))[0]))
    assert isinstance(first, Reject) and (first.reason, first.locator) == ("image_size_mismatch", "region_descriptions.json[0].regions[0]")
    assert first.message == "VG_100K/1.jpg is 64x48, image_data.json says 65x48"


def test_missing_annotation_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="region_descriptions.json is missing"):
        VgAdapter().units(Roots.of(tmp_path))


def region(**fields):
    return {"region_id": 9, "image_id": 1, "phrase": "a box", "x": 1, "y": 1, "width": 4, "height": 4, **fields}


def convert_records(root, records):
    """Every outcome of hand-written region records over the fixture's images and image_data."""
    VgAdapter().write_fixture(root)
    (root / vg.REGIONS).write_text(json.dumps(records))  # json writes NaN / Infinity, and json reads them back
    return convert_fixture(VgAdapter(), root)


def summary(outcomes):
    return [(o.id, None) if isinstance(o, Sample) else (o.reason, o.locator, o.message) for o in outcomes]


@pytest.mark.parametrize("bad, reason, message", [
    (region(region_id=True), "bad_region_id", "region id True is not an integer"),
    (region(region_id=101.7), "bad_region_id", "region id 101.7 is not an integer"),
    (region(region_id="9"), "bad_region_id", "region id '9' is not an integer"),
    (region(x=float("nan")), "bad_box", "x, y, width, height [nan, 1, 4, 4] are not four finite numbers"),
    (region(width=float("inf")), "bad_box", "x, y, width, height [1, 1, inf, 4] are not four finite numbers"),
    (region(y=False), "bad_box", "x, y, width, height [1, False, 4, 4] are not four finite numbers"),
    (region(height="4"), "bad_box", "x, y, width, height [1, 1, 4, '4'] are not four finite numbers"),
    ("a region", "bad_record", "region is str, not an object"),
])
def test_a_bad_region_is_one_reject_and_its_neighbours_convert(tmp_path, bad, reason, message):
    outcomes = convert_records(tmp_path, [{"id": 1, "regions": [region(region_id=8), bad, region(region_id=10)]}])
    assert summary(outcomes) == [
        ("vg/regions/8", None), (reason, "region_descriptions.json[0].regions[1]", message), ("vg/regions/10", None)]


def test_a_region_without_phrase_is_an_empty_answer_reject(tmp_path):
    outcomes = convert_records(tmp_path, [{"id": 1, "regions": [region(phrase=None)]}])
    assert summary(outcomes) == [("empty_turn", "region_descriptions.json[0].regions[0]", "turn 1 (assistant) is empty")]


def test_a_lone_surrogate_in_a_phrase_is_invalid_text_not_a_crash(tmp_path):
    outcomes = convert_records(tmp_path, [{"id": 1, "regions": [region(phrase="cup \ud800")]}])
    assert summary(outcomes) == [("invalid_text", "region_descriptions.json[0].regions[0]",
                                  "regions.0.label: lone surrogate '\\ud800' at character 4")]


def test_an_unexpected_failure_is_one_adapter_error(tmp_path, monkeypatch):
    def fail_on_corner(text):
        if text == "corner":
            raise ZeroDivisionError("boom")
        return normalize_text(text)

    monkeypatch.setattr(vg, "normalize_text", fail_on_corner)
    samples, rejects = split_outcomes(fixture_outcomes(VgAdapter(), tmp_path))
    # read: 12 regions in the six records that have a regions list, plus the two bad records
    assert (len(samples), len(rejects)) == (5, 9)
    assert [(r.reason, r.locator, r.message) for r in rejects if r.reason == "adapter_error"] == [
        ("adapter_error", "region_descriptions.json[4].regions[0]", "ZeroDivisionError: boom")]
