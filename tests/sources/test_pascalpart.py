"""Pascal-Part adapter on real .mat fixture files: part labels, masks, groups and trap rejects."""

import numpy as np
import pytest
from scipy import io as sio

from schemas import Reject, masks
from sources.fixtures import rect_mask
from sources.pascalpart import (
    CAT_HEAD, CAT_LEYE, CAT_PAW, ENGINE_1, ENGINE_2, PART_WORDS, WHEEL, PascalPartAdapter, part_label,
)
from sources.roots import Roots
from tests.sources.fixture_outcomes import fixture_outcomes, samples_by_id

QUESTION = "What is the category of <obj{}>? Using only one word or phrase."
TRAPS = [
    ("unknown_part", "Annotations_Part/2008_000001.mat:objects[0].parts[3]"),
    ("empty_mask", "Annotations_Part/2008_000001.mat:objects[0].parts[4]"),
    ("mask_size_mismatch", "Annotations_Part/2008_000002.mat:objects[0].parts[3]"),
    ("image_missing", "Annotations_Part/2008_000003.mat"),
    ("no_parts", "Annotations_Part/2008_000004.mat"),
    ("bad_mat", "Annotations_Part/2008_000005.mat"),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return fixture_outcomes(PascalPartAdapter(), tmp_path_factory.mktemp("pascalpart"))


def assert_part(region, width, height, rect, label):
    assert (region.label, region.prompt, region.mask_origin) == (label, "mask", "annotation")
    (frame,) = region.frames
    assert frame.box == tuple(float(v) for v in rect)
    np.testing.assert_array_equal(masks.decode(frame.mask.model_dump()), rect_mask(width, height, rect).astype(bool))


def test_part_labels_spell_out_the_release_names():
    assert [part_label(*pair) for pair in [("cat", "leye"), ("cow", "lhorn"), ("horse", "rbho"), ("dog", "lfpa"),
                                           ("aeroplane", "engine_3"), ("train", "cfrontside_2"), ("tvmonitor", "screen"),
                                           ("pottedplant", "pot"), ("person", "ruarm"), ("cat", "lwhisker")]] == [
        "cat left eye", "cow left horn", "horse right back hoof", "dog left front paw", "aeroplane engine",
        "train coach front side", "tv monitor screen", "potted plant pot", "person right upper arm", None]
    assert len(PART_WORDS) == 89  # every distinct name part2ind.m defines


def test_samples_labels_masks_and_conversation(outcomes):
    samples = samples_by_id(outcomes)
    assert sorted(samples) == ["pascalpart/trainval/2008_000001_0", "pascalpart/trainval/2008_000002_0"]
    cat = samples["pascalpart/trainval/2008_000001_0"]
    assert (cat.task, cat.split, cat.subset) == ("recognition", "trainval", "trainval")
    assert (cat.media.path, cat.media.width, cat.media.height) == ("JPEGImages/2008_000001.jpg", 48, 40)
    for region, rect, label in zip(cat.regions, [CAT_HEAD, CAT_LEYE, CAT_PAW], ["cat head", "cat left eye", "cat left front paw"]):
        assert_part(region, 48, 40, rect, label)
    assert [(t.role, t.text) for t in cat.conversation[1:]] == [
        ("user", QUESTION.format(0)), ("assistant", "cat head"), ("user", QUESTION.format(1)), ("assistant", "cat left eye"),
        ("user", QUESTION.format(2)), ("assistant", "cat left front paw")]
    assert cat.conversation[0].text == PascalPartAdapter.system_prompt
    assert cat.meta == {"imname": "2008_000001", "objects_without_parts": 1, "regions": [
        {"object": 0, "part": 0, "part_name": "head"}, {"object": 0, "part": 1, "part_name": "leye"},
        {"object": 0, "part": 2, "part_name": "lfpa"}]}
    assert cat.provenance.file == "Annotations_Part/2008_000001.mat"

    plane = samples["pascalpart/trainval/2008_000002_0"]
    for region, rect, label in zip(plane.regions, [ENGINE_1, ENGINE_2, WHEEL], ["aeroplane engine", "aeroplane engine", "aeroplane wheel"]):
        assert_part(region, 48, 24, rect, label)


def test_traps_are_rejected_with_reasons_and_counts_add_up(outcomes):
    assert [(o.reason, o.locator) for o in outcomes if isinstance(o, Reject)] == TRAPS
    assert len(outcomes) == 2 + len(TRAPS)


def test_groups_of_at_most_regions_per_sample(tmp_path):
    adapter = PascalPartAdapter()
    adapter.regions_per_sample = 2
    samples = samples_by_id(fixture_outcomes(adapter, tmp_path))
    assert {k: [r.label for r in s.regions] for k, s in samples.items() if "000001" in k} == {
        "pascalpart/trainval/2008_000001_0": ["cat head", "cat left eye"],
        "pascalpart/trainval/2008_000001_1": ["cat left front paw"]}


def test_units_slice_the_sorted_files(tmp_path):
    adapter = PascalPartAdapter()
    adapter.write_fixture(tmp_path)
    adapter.files_per_unit = 3
    assert [(u.name, u.spec["files"]) for u in adapter.units(Roots.of(tmp_path))] == [
        ("Annotations_Part-00000", ["2008_000001.mat", "2008_000002.mat", "2008_000003.mat"]),
        ("Annotations_Part-00001", ["2008_000004.mat", "2008_000005.mat"])]
    with pytest.raises(FileNotFoundError, match="no .mat files"):
        adapter.units(Roots.of(tmp_path / "JPEGImages"))


def test_a_mat_file_without_anno_is_bad_annotation(tmp_path):
    adapter = PascalPartAdapter()
    adapter.write_fixture(tmp_path)
    sio.savemat(str(tmp_path / "Annotations_Part/2008_000001.mat"), {"other": np.zeros(2)})
    roots = Roots.of(tmp_path)
    first = next(adapter.convert(roots, adapter.units(roots)[0]))
    assert (first.reason, first.locator) == ("bad_annotation", "Annotations_Part/2008_000001.mat")


def test_fixture_mat_files_carry_no_timestamp(tmp_path):
    """savemat dates its header; the fixture replaces it, so reruns (the demo's) see the same bytes."""
    PascalPartAdapter().write_fixture(tmp_path)
    headers = {p.read_bytes()[:116] for p in sorted(tmp_path.rglob("*.mat")) if p.read_bytes().startswith(b"MATLAB")}
    assert headers == {b"MATLAB 5.0 MAT-file, pixelrefer-data Pascal-Part fixture".ljust(116)}
