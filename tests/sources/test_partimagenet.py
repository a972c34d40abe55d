"""PartImageNet adapter on its COCO-format fixture: part labels, masks and trap rejects."""

import numpy as np
import pytest

from schemas import Reject, masks
from sources.fixtures import rect_mask
from sources.partimagenet import BODY, HEAD, MIRROR, TIRE, PartImageNetAdapter, part_label
from sources.roots import Roots
from tests.sources.fixture_outcomes import fixture_outcomes, samples_by_id

QUESTION = "What is the category of <obj{}>? Using only one word or phrase."


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return fixture_outcomes(PartImageNetAdapter(), tmp_path_factory.mktemp("partimagenet"))


def assert_part(region, width, height, rect, label):
    assert (region.label, region.prompt, region.mask_origin) == (label, "mask", "annotation")
    (frame,) = region.frames
    assert frame.box == tuple(float(v) for v in rect)
    np.testing.assert_array_equal(masks.decode(frame.mask.model_dump()), rect_mask(width, height, rect).astype(bool))


def test_part_labels():
    assert [part_label(n) for n in ["Quadruped Head", "Car Tier", "Car Side Mirror", "Bicycle Tier", "Bottle Mouth"]] == [
        "quadruped head", "car tire", "car side mirror", "bicycle tire", "bottle mouth"]


def test_units_find_the_annotations_folder(tmp_path):
    PartImageNetAdapter().write_fixture(tmp_path)
    assert [(u.name, u.spec["file"]) for u in PartImageNetAdapter().units(Roots.of(tmp_path))] == [
        ("train-00000", "annotations/train.json"), ("val-00000", "annotations/val.json")]


def test_samples(outcomes):
    samples = samples_by_id(outcomes)
    assert sorted(samples) == ["partimagenet/train/1_0", "partimagenet/val/7_0"]
    dog = samples["partimagenet/train/1_0"]
    assert (dog.task, dog.split, dog.media.path, dog.media.width, dog.media.height) == (
        "recognition", "train", "images/train/n02085620_1.JPEG", 48, 32)
    assert_part(dog.regions[0], 48, 32, HEAD, "quadruped head")
    assert_part(dog.regions[1], 48, 32, BODY, "quadruped body")
    assert [(t.role, t.text) for t in dog.conversation] == [
        ("system", PartImageNetAdapter.system_prompt), ("user", QUESTION.format(0)), ("assistant", "quadruped head"),
        ("user", QUESTION.format(1)), ("assistant", "quadruped body")]
    assert dog.meta == {"image_id": 1, "regions": [{"annotation_id": 1, "category_id": 0}, {"annotation_id": 2, "category_id": 1}]}
    car = samples["partimagenet/val/7_0"]
    assert car.split == "val"
    assert_part(car.regions[0], 40, 32, TIRE, "car tire")
    assert_part(car.regions[1], 40, 32, MIRROR, "car side mirror")


def test_traps_are_rejected_with_reasons_and_counts_add_up(outcomes):
    rejects = [(o.reason, o.locator) for o in outcomes if isinstance(o, Reject)]
    assert rejects == [
        ("invalid_polygon", "annotations/train.json:annotations[id=3]"),  # a 4-number ring
        ("unknown_category", "annotations/train.json:annotations[id=4]"),
        ("no_segmentation", "annotations/train.json:annotations[id=5]"),  # no mask made from its box
        ("image_missing", "annotations/train.json:images[id=2]"),
        ("image_size_mismatch", "annotations/val.json:images[id=8]"),
    ]
    assert len(outcomes) == 2 + len(rejects)
