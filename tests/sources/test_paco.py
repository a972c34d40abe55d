"""PACO adapter on its native-format fixture: objects, parts, box-only objects, mask encodings, traps."""

import json

import numpy as np
import pytest

from schemas import masks
from sources.fixtures import rect_mask
from sources.paco import HANDBAG, MUG, MUG_HANDLE, TRASH_CAN, ZIP, PacoAdapter
from sources.roots import Roots
from tests.sources.test_registry import convert_fixture, split_outcomes

QUESTION = "What is the category of <obj{}>? Using only one word or phrase."


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    root = tmp_path_factory.mktemp("paco")
    PacoAdapter().write_fixture(root)
    return split_outcomes(convert_fixture(PacoAdapter(), root))


def mask_of(region):
    return masks.decode(region.frames[0].mask.model_dump())


def test_units_cover_the_files_present(tmp_path):
    PacoAdapter().write_fixture(tmp_path)
    units = PacoAdapter().units(Roots.of(tmp_path))
    assert [(u.name, u.spec["file"]) for u in units] == [
        ("paco_lvis_v1_val-00000", "annotations/paco_lvis_v1_val.json"),
        ("paco_ego4d_v1_train-00000", "annotations/paco_ego4d_v1_train.json")]


def test_official_layout_with_coco_and_frames_in_other_roots(tmp_path):
    """The release as facebookresearch/paco lays it out (`paco/annotations/*.json`), COCO images
    in a shared COCO folder, Ego4D frames in a third folder: no file is moved or copied."""
    PacoAdapter().write_fixture(tmp_path / "fixture")
    for folder, dest in [("annotations", "paco"), ("val2017", "coco"), ("paco_frames", "ego4d")]:
        (tmp_path / dest).mkdir()
        (tmp_path / "fixture" / folder).rename(tmp_path / dest / folder)
    roots = Roots.of(tmp_path / "paco", media=[tmp_path / "coco", tmp_path / "ego4d"])
    samples, rejects = split_outcomes(convert_fixture(PacoAdapter(), roots))
    assert [s.id for s in samples] == ["paco/lvis_val/42_0", "paco/ego4d_train/500_0"]
    assert [r.reason for r in rejects] == ["mask_size_mismatch", "image_missing"]
    # a link the user placed into another declared root is followed; one leading elsewhere is not
    (tmp_path / "ego4d/paco_frames").rename(tmp_path / "fixture/paco_frames")
    (tmp_path / "paco/paco_frames").symlink_to(tmp_path / "fixture/paco_frames")
    _, rejects = split_outcomes(convert_fixture(PacoAdapter(), roots))
    assert [r.reason for r in rejects] == ["mask_size_mismatch", "image_missing", "path_escapes_root"]
    (tmp_path / "fixture/paco_frames").rename(tmp_path / "ego4d/frames")
    (tmp_path / "paco/paco_frames").unlink()
    (tmp_path / "paco/paco_frames").symlink_to(tmp_path / "ego4d/frames")
    samples, _ = split_outcomes(convert_fixture(PacoAdapter(), roots))
    assert [s.id for s in samples] == ["paco/lvis_val/42_0", "paco/ego4d_train/500_0"]
    # annotation files may also sit directly under the root, as older copies have them
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("paco_lvis_v1_val.json", "paco_ego4d_v1_train.json"):
        (flat / name).write_bytes((tmp_path / "paco/annotations" / name).read_bytes())
    assert [u.spec["file"] for u in PacoAdapter().units(Roots.of(flat))] == ["paco_lvis_v1_val.json", "paco_ego4d_v1_train.json"]


def test_paco_lvis_objects_parts_and_box_only_object(outcomes):
    samples, _ = outcomes
    assert [s.id for s in samples] == ["paco/lvis_val/42_0", "paco/ego4d_train/500_0"]
    s = samples[0]
    assert (s.subset, s.split, s.task, s.media.path) == ("lvis_val", "val", "recognition", "val2017/000000000042.jpg")
    assert [(r.label, r.prompt, r.mask_origin) for r in s.regions] == [
        ("handbag", "mask", "annotation"), ("handbag zip", "mask", "annotation"), ("trash can", "box", None)]
    # polygon object and uncompressed-RLE part decode to the drawn rectangles
    for region, rect in zip(s.regions[:2], [HANDBAG, ZIP]):
        np.testing.assert_array_equal(mask_of(region), rect_mask(64, 48, rect).astype(bool))
        assert region.frames[0].box == tuple(float(v) for v in rect)
    # empty segmentation: the box stays a box prompt, no mask is invented
    assert s.regions[2].frames[0].model_dump() == {"frame": 0, "mask": None, "box": tuple(float(v) for v in TRASH_CAN), "point": None}
    assert [t.text for t in s.conversation] == [
        PacoAdapter.system_prompt,
        QUESTION.format(0), "handbag", QUESTION.format(1), "handbag zip", QUESTION.format(2), "trash can"]
    assert "name a part as the object followed by the part" in s.conversation[0].text
    assert s.meta["regions"] == [
        {"annotation_id": 7, "category_id": 35, "obj_ann_id": 7, "kind": "object", "attribute_ids": [0, 44],
         "unknown": ["unknown_transparency"]},
        {"annotation_id": 8, "category_id": 2455, "obj_ann_id": 7, "kind": "part", "attribute_ids": [3], "unknown": []},
        {"annotation_id": 9, "category_id": 23, "obj_ann_id": 9, "kind": "object", "attribute_ids": [], "unknown": []},
    ]
    assert s.provenance.file == "annotations/paco_lvis_v1_val.json"
    assert s.provenance.locator == "annotations/paco_lvis_v1_val.json:images[id=42]"


def test_paco_ego4d_frames_and_compressed_rle(outcomes):
    s = outcomes[0][1]
    assert (s.media.path, s.license, s.split) == ("paco_frames/a1b2c3_000150.jpeg", "Ego4D-license", "train")
    assert [r.label for r in s.regions] == ["mug", "mug handle"]
    for region, rect in zip(s.regions, [MUG, MUG_HANDLE]):
        np.testing.assert_array_equal(mask_of(region), rect_mask(40, 32, rect).astype(bool))
    assert [(r["kind"], r["instance_id"]) for r in s.meta["regions"]] == [("object", "a1b2c3_mug_0"), ("part", "a1b2c3_mug_0")]


def test_traps(outcomes):
    assert [(r.reason, r.locator) for r in outcomes[1]] == [
        ("mask_size_mismatch", "annotations/paco_lvis_v1_val.json:annotations[id=10]"),
        ("image_missing", "annotations/paco_lvis_v1_val.json:images[id=43]"),
    ]


def test_box_only_object_outside_the_image_is_a_degenerate_box(tmp_path):
    PacoAdapter().write_fixture(tmp_path)
    path = tmp_path / "annotations/paco_lvis_v1_val.json"
    data = json.loads(path.read_text())
    data["annotations"][2]["bbox"] = [70, 8, 10, 10]  # right of the 64-wide image
    path.write_text(json.dumps(data))
    samples, rejects = split_outcomes(convert_fixture(PacoAdapter(), tmp_path))
    assert [r.label for r in samples[0].regions] == ["handbag", "handbag zip"]
    assert (rejects[0].reason, rejects[0].locator) == ("degenerate_box", "annotations/paco_lvis_v1_val.json:annotations[id=9]")
