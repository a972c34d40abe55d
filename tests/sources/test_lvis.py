"""LVIS adapter on its native-format fixture: exact samples, masks, prompts and trap rejects."""

import json

import numpy as np
import pytest

from schemas import masks
from sources.coco import category_label
from sources.fixtures import rect_mask
from sources.lvis import GRID_RECTS, TRAIN2017_RECT, VAL_RECTS, LvisAdapter
from sources.roots import Roots
from tests.sources.test_registry import convert_fixture, split_outcomes

QUESTION = "What is the category of <obj{}>? Using only one word or phrase."


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("lvis")
    LvisAdapter().write_fixture(root)
    return root


def outcomes_by_file(root, adapter=None):
    adapter = adapter or LvisAdapter()
    samples, rejects = split_outcomes(convert_fixture(adapter, root))
    return samples, [(r.reason, r.locator) for r in rejects]


def assert_rect_region(region, width, height, rect, label):
    assert (region.label, region.prompt, region.mask_origin) == (label, "mask", "annotation")
    (frame,) = region.frames
    assert frame.frame == 0 and frame.box == tuple(float(v) for v in rect)
    np.testing.assert_array_equal(masks.decode(frame.mask.model_dump()), rect_mask(width, height, rect).astype(bool))


def test_category_label_normalisation():
    assert [category_label(n) for n in ["car_(automobile)", "trash_can", "handbag:zip", "glass_(drink_container):handle", "bow_(weapon)"]] == [
        "car", "trash can", "handbag zip", "glass handle", "bow"]
    # a real LVIS v1 name that carries a synonym after its disambiguator (category 720 of
    # lvis_v1_val.json); Osprey's evaluation keeps what precedes `_(`
    assert category_label("monitor_(computer_equipment) computer_monitor") == "monitor"


def test_units_one_per_file_slice(root):
    adapter = LvisAdapter()
    assert [(u.name, u.spec) for u in adapter.units(Roots.of(root))] == [
        ("lvis_v1_train-00000", {"file": "lvis_v1_train.json", "start": 0, "stop": 1000, "last": True}),
        ("lvis_v1_val-00000", {"file": "lvis_v1_val.json", "start": 0, "stop": 1000, "last": True}),
    ]
    adapter.images_per_unit = 3
    assert [(u.name, u.spec["start"], u.spec["last"]) for u in adapter.units(Roots.of(root))] == [
        ("lvis_v1_train-00000", 0, True), ("lvis_v1_val-00000", 0, False), ("lvis_v1_val-00001", 3, True)]
    # slicing changes nothing in the outcomes
    assert outcomes_by_file(root, adapter)[1] == outcomes_by_file(root)[1]


def test_samples_ids_masks_and_conversation(root):
    samples, rejects = outcomes_by_file(root)
    assert [s.id for s in samples] == ["lvis/train/5_0", "lvis/train/5_1", "lvis/val/1_0", "lvis/val/2_0"]
    big, rest, val1, val2 = samples

    # 21 annotations of one image: 20 regions, then 1, in annotation-id order
    assert len(big.regions) == 20 and len(rest.regions) == 1
    labels = ["trash can", "bow", "car"]
    for i, (region, rect) in enumerate(zip(big.regions + rest.regions, GRID_RECTS)):
        assert_rect_region(region, 96, 64, rect, labels[i % 3])
    assert [r["annotation_id"] for r in big.meta["regions"]] == list(range(100, 120))
    assert rest.meta["regions"] == [{"annotation_id": 120, "category_id": 207}]
    assert [t.text for t in rest.conversation[1:]] == [QUESTION.format(0), "car"]
    assert [t.text for t in big.conversation[-2:]] == [QUESTION.format(19), "bow"]

    assert (val1.subset, val1.split, val1.license, val1.task) == ("val", "val", "CC-BY-4.0", "recognition")
    assert (val1.media.path, val1.media.width, val1.media.height) == ("val2017/000000000001.jpg", 64, 48)
    assert_rect_region(val1.regions[0], 64, 48, VAL_RECTS[0], "car")
    assert_rect_region(val1.regions[1], 64, 48, VAL_RECTS[1], "trash can")  # two rings merged
    assert [(t.role, t.text) for t in val1.conversation] == [
        ("system", LvisAdapter.system_prompt),
        ("user", QUESTION.format(0)), ("assistant", "car"),
        ("user", QUESTION.format(1)), ("assistant", "trash can"),
    ]
    assert val1.meta == {"image_id": 1, "neg_category_ids": [5], "not_exhaustive_category_ids": [3],
                         "regions": [{"annotation_id": 10, "category_id": 207}, {"annotation_id": 11, "category_id": 3}]}
    assert val1.provenance.model_dump() == {"file": "lvis_v1_val.json", "locator": "lvis_v1_val.json:images[id=1]",
                                            "adapter": "lvis", "adapter_version": "2"}

    # an LVIS val image that lives in COCO train2017, found through coco_url
    assert val2.media.path == "train2017/000000000002.jpg"
    assert [r.label for r in val2.regions] == ["bow"]
    assert_rect_region(val2.regions[0], 48, 32, TRAIN2017_RECT, "bow")


def test_traps_are_rejected_with_reasons(root):
    assert outcomes_by_file(root)[1] == [
        ("invalid_polygon", "lvis_v1_val.json:annotations[id=13]"),  # a 4-number ring
        ("image_missing", "lvis_v1_val.json:images[id=3]"),
        ("image_empty", "lvis_v1_val.json:images[id=4]"),
        ("image_record_missing", "lvis_v1_val.json:annotations[id=16]"),
    ]


def edit_val(root, tmp_path, change):
    """A copy of the fixture with lvis_v1_val.json edited by `change(data)`."""
    copy = tmp_path / "lvis"
    LvisAdapter().write_fixture(copy)
    path = copy / "lvis_v1_val.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    (copy / "lvis_v1_train.json").unlink()
    return copy


def test_escaping_url_size_mismatch_and_unknown_category(root, tmp_path):
    def change(data):
        data["images"][0]["coco_url"] = "http://images.cocodataset.org/../../secret.jpg"
        data["images"][1]["width"] = 50
        data["images"].append({"id": 6, "coco_url": "http://x/val2017/000000000001.jpg", "width": 64, "height": 48})
        data["annotations"].append({"id": 17, "image_id": 6, "category_id": 999, "bbox": [0, 0, 4, 4],
                                    "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]})
        data["annotations"].append({"id": 18, "image_id": 6, "category_id": 3, "bbox": [0, 0, 4, 4], "segmentation": []})

    samples, rejects = outcomes_by_file(edit_val(root, tmp_path, change))
    assert samples == []
    assert rejects == [
        ("path_escapes_root", "lvis_v1_val.json:images[id=1]"),
        ("image_size_mismatch", "lvis_v1_val.json:images[id=2]"),
        ("image_missing", "lvis_v1_val.json:images[id=3]"),
        ("image_empty", "lvis_v1_val.json:images[id=4]"),
        ("unknown_category", "lvis_v1_val.json:annotations[id=17]"),
        ("no_segmentation", "lvis_v1_val.json:annotations[id=18]"),  # LVIS never gets a box prompt
        ("image_record_missing", "lvis_v1_val.json:annotations[id=16]"),
    ]


def test_duplicate_image_ids_are_rejected_not_overwritten(root, tmp_path):
    """Image 1 listed twice: neither record's annotations can be placed safely."""
    def change(data):
        data["images"].append(dict(data["images"][0], width=32, height=32))

    samples, rejects = outcomes_by_file(edit_val(root, tmp_path, change))
    assert [s.id for s in samples] == ["lvis/val/2_0"]
    assert rejects[-1] == ("duplicate_image_id", "lvis_v1_val.json:images[id=1]")
    assert len(rejects) == 5


def test_bad_annotation_values_are_that_annotation_s_reject(root, tmp_path):
    """A bbox of strings and a polygon of nulls lose only their own annotation; image 1 keeps the rest."""
    def change(data):
        data["annotations"][0]["bbox"] = ["a", 1, 2, 3]
        data["annotations"][1]["segmentation"] = [[None, 1, 2, 3, 4, 5]]

    samples, rejects = outcomes_by_file(edit_val(root, tmp_path, change))
    assert [s.id for s in samples] == ["lvis/val/2_0"]
    assert rejects[:2] == [("bad_box", "lvis_v1_val.json:annotations[id=10]"),
                           ("bad_mask", "lvis_v1_val.json:annotations[id=11]")]


def test_unexpected_failure_is_an_adapter_error_of_that_record(root, tmp_path, monkeypatch):
    from sources import coco

    real = coco.annotation_region

    def flaky(ann, *args, **kwargs):
        if ann["id"] == 12:
            raise ZeroDivisionError("boom")
        return real(ann, *args, **kwargs)

    monkeypatch.setattr(coco, "annotation_region", flaky)
    outcomes = convert_fixture(LvisAdapter(), root)
    samples, rejects = split_outcomes(outcomes)
    assert [s.id for s in samples] == ["lvis/train/5_0", "lvis/train/5_1", "lvis/val/1_0"]
    assert [r.to_dict() for r in rejects if r.reason == "adapter_error"] == [
        {"reason": "adapter_error", "locator": "lvis_v1_val.json:annotations[id=12]", "detail": "ZeroDivisionError: boom"}]
    assert len(samples) + len(rejects) == len(outcomes) == 8


def test_images_from_a_shared_coco_media_root(root, tmp_path):
    """Annotations alone in one folder, images in a COCO folder declared as a media root."""
    (tmp_path / "ann").mkdir()
    for name in ("lvis_v1_val.json", "lvis_v1_train.json"):
        (tmp_path / "ann" / name).write_bytes((root / name).read_bytes())
    (tmp_path / "coco").symlink_to(root)
    samples, rejects = split_outcomes(convert_fixture(LvisAdapter(), Roots.of(tmp_path / "ann", media=[tmp_path / "coco"])))
    assert [s.id for s in samples] == ["lvis/train/5_0", "lvis/train/5_1", "lvis/val/1_0", "lvis/val/2_0"]
    assert [r.reason for r in rejects] == ["invalid_polygon", "image_missing", "image_empty", "image_record_missing"]
    # without the media root every image is missing
    _, alone = split_outcomes(convert_fixture(LvisAdapter(), tmp_path / "ann"))
    assert [r.reason for r in alone].count("image_missing") == 5


def test_missing_release_and_malformed_file_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="none of lvis_v1_train.json, lvis_v1_val.json found"):
        LvisAdapter().units(Roots.of(tmp_path))
    (tmp_path / "lvis_v1_val.json").write_text('{"images": []}')
    with pytest.raises(ValueError, match="lvis_v1_val.json: not a COCO-style annotation file"):
        LvisAdapter().units(Roots.of(tmp_path))


def test_a_record_that_is_not_an_object_is_its_own_reject(root, tmp_path):
    """One stray value in images[] / annotations[] / categories[] costs that entry, not the file."""
    def change(data):
        data["annotations"].append([1, 2])
        data["annotations"].append({"id": 19, "image_id": [1], "category_id": 3, "segmentation": []})
        data["images"].insert(0, "val2017/000000000001.jpg")
        data["categories"].append({"id": True, "name": "x"})

    samples, rejects = outcomes_by_file(edit_val(root, tmp_path, change))
    assert [s.id for s in samples] == ["lvis/val/1_0", "lvis/val/2_0"]
    assert rejects[-5:] == [
        ("image_record_missing", "lvis_v1_val.json:annotations[id=16]"),
        ("image_record_missing", "lvis_v1_val.json:annotations[id=19]"),
        ("bad_record", "lvis_v1_val.json:images[0]"),
        ("bad_record", "lvis_v1_val.json:annotations[7]"),
        ("bad_record", "lvis_v1_val.json:categories[3]"),
    ]
