"""RefCOCO family adapter: refs pickle + instances.json -> one phrase caption per sentence."""

import builtins
import json
import pickle

import numpy as np
import pytest

from schemas import Sample, masks
from sources import refcoco
from sources.coco import annotation_region, fixture_annotation
from sources.fixtures import rect_mask
from sources.refcoco import DOG, IMAGES, PERSON, QUESTION, RefcocoAdapter
from sources.roots import Roots
from tests.sources.test_registry import convert_fixture, split_outcomes


class TouchOnLoad:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


@pytest.fixture()
def root(tmp_path):
    RefcocoAdapter().write_fixture(tmp_path)
    return tmp_path


def test_units_one_per_refs_file(root):
    assert [(u.name, u.spec) for u in RefcocoAdapter().units(Roots.of(root))] == [
        ("refcoco_unc", {"refs": "refcoco/refs(unc).p"}),
        ("refcocoplus_unc", {"refs": "refcoco+/refs(unc).p"}),
        ("refcocog_umd", {"refs": "refcocog/refs(umd).p"}),
    ]


def test_one_sample_per_sentence(root):
    samples, _ = split_outcomes(convert_fixture(RefcocoAdapter(), root))
    # the answer is the release's cleaned `sent`, not `raw` ("Man on the left", "left  guy ", "the\tDOG", ...)
    assert [(s.id, s.split, s.regions[0].label, s.conversation[1].text) for s in samples] == [
        ("refcoco/refcoco_unc/1_11", "train", "person", "man on the left"),
        ("refcoco/refcoco_unc/1_12", "train", "person", "left guy"),
        ("refcoco/refcoco_unc/2_21", "testA", "dog", "the dog"),
        ("refcoco/refcoco_unc/6_62", "train", "dog", "brown dog"),  # its first sentence is a reject
        ("refcoco/refcocoplus_unc/5_51", "train", "person", "man in red"),
        ("refcoco/refcocog_umd/10_101", "val", "dog", "a brown dog lying on the right"),
    ]
    first = samples[0]
    assert (first.task, first.subset, first.media.path) == ("phrase_caption", "refcoco_unc", "train2014/COCO_train2014_000000000101.jpg")
    assert [(t.role, t.text) for t in first.conversation] == [("user", QUESTION), ("assistant", "man on the left")]
    assert QUESTION == "Describe <obj0> briefly."
    assert first.meta == {"ref_id": 1, "ann_id": 1001, "image_id": 101, "category_id": 1, "sent_id": 11}
    assert first.provenance.model_dump() == {"file": "refcoco/refs(unc).p", "locator": "refcoco/refs(unc).p:refs[ref_id=1].sentences[0]",
                                             "adapter": "refcoco", "adapter_version": "2"}
    for sample, rect in zip(samples, [PERSON, PERSON, DOG, DOG, PERSON, DOG]):
        (region,) = sample.regions
        assert (region.prompt, region.frames[0].box) == ("mask", tuple(float(v) for v in rect))
        np.testing.assert_array_equal(masks.decode(region.frames[0].mask.model_dump()), rect_mask(64, 48, rect).astype(bool))


def test_traps(root):
    refs = pickle.loads((root / "refcoco/refs(unc).p").read_bytes())
    refs.append({"ref_id": 7, "ann_id": 1001, "image_id": 101, "split": "train", "sentences": []})
    (root / "refcoco/refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    _, rejects = split_outcomes(convert_fixture(RefcocoAdapter(), root))
    assert [(r.reason, r.locator) for r in rejects] == [
        ("annotation_missing", "refcoco/refs(unc).p:refs[ref_id=3]"),
        ("image_missing", "refcoco/refs(unc).p:refs[ref_id=4]"),
        ("bad_ref", "refcoco/refs(unc).p:refs[4]"),  # "not a ref": the refs around it still convert
        ("bad_sentence", "refcoco/refs(unc).p:refs[ref_id=6].sentences[0]"),  # sent_id True
        ("no_sentences", "refcoco/refs(unc).p:refs[ref_id=7]"),
    ]
    assert rejects[2].message == "a ref is str, not an object"


GOOD = {"ref_id": 8, "ann_id": 1001, "image_id": 101, "split": "train", "sentences": [{"sent_id": 81, "sent": "a man"}]}


REF8 = "refcocog/refs(umd).p:refs[ref_id=8]"


@pytest.mark.parametrize("ref, reason, where", [
    ({**GOOD, "ref_id": True}, "bad_ref", "refcocog/refs(umd).p:refs[1]"),  # no usable ref_id: its position
    ({**GOOD, "ann_id": 1001.0}, "bad_ref", REF8),  # would find annotation 1001 in a dict
    ({**GOOD, "ann_id": True}, "bad_ref", REF8),
    ({**GOOD, "split": None}, "bad_ref", REF8),
    ({**GOOD, "ann_id": 1004}, "image_record_missing", REF8),  # its image 103 is not in images[]
    ({**GOOD, "sentences": [{"sent_id": 81, "sent": None, "raw": "A man"}]}, "bad_sentence", f"{REF8}.sentences[0]"),
    ({**GOOD, "sentences": [{"sent_id": 81.0, "sent": "a man"}]}, "bad_sentence", f"{REF8}.sentences[0]"),
    ({**GOOD, "sentences": ["a man"]}, "bad_sentence", f"{REF8}.sentences[0]"),
    ({**GOOD, "sentences": [{"sent_id": 81, "sent": "a man \ud800"}]}, "invalid_text", f"{REF8}.sentences[0]"),
])
def test_handmade_bad_refs(root, ref, reason, where):
    instances = json.loads((root / "refcocog/instances.json").read_text())
    instances["annotations"].append(fixture_annotation(1004, 103, 1, (0, 0, 8, 8), iscrowd=0))
    (root / "refcocog/instances.json").write_text(json.dumps(instances))
    (root / "refcocog/refs(umd).p").write_bytes(pickle.dumps([GOOD | {"ref_id": 7}, ref, GOOD | {"ref_id": 9}], protocol=2))
    outcomes = list(RefcocoAdapter().convert(root, RefcocoAdapter().units(Roots.of(root))[2]))
    assert [o.id if isinstance(o, Sample) else (o.reason, o.locator) for o in outcomes] == [
        "refcoco/refcocog_umd/7_81", (reason, where), "refcoco/refcocog_umd/9_81"]


def test_an_unexpected_failure_is_one_adapter_error(root, monkeypatch):
    def fail_on_dog(ann, label, *args):
        if label == "dog":
            raise KeyError("segmentation")
        return annotation_region(ann, label, *args)

    monkeypatch.setattr(refcoco, "annotation_region", fail_on_dog)
    samples, rejects = split_outcomes(convert_fixture(RefcocoAdapter(), root))
    # 8 refs read: refs 1 (two sentences) and 5 written, one reject for each of the other 6
    assert [s.id for s in samples] == ["refcoco/refcoco_unc/1_11", "refcoco/refcoco_unc/1_12", "refcoco/refcocoplus_unc/5_51"]
    assert [(r.reason, r.locator, r.message) for r in rejects if r.reason == "adapter_error"] == [
        ("adapter_error", "refcoco/refs(unc).p:refs[ref_id=2]", "KeyError: 'segmentation'"),
        ("adapter_error", "refcoco/refs(unc).p:refs[ref_id=6]", "KeyError: 'segmentation'"),
        ("adapter_error", "refcocog/refs(umd).p:refs[ref_id=10]", "KeyError: 'segmentation'"),
    ]
    assert len(rejects) == 6


def separate_folders(tmp_path):
    """The fixture's annotations in `ann/`, its train2014 images in `coco/` (one COCO folder)."""
    RefcocoAdapter().write_fixture(tmp_path / "ann")
    (tmp_path / "coco").mkdir()
    (tmp_path / "ann" / IMAGES).rename(tmp_path / "coco" / IMAGES)
    return tmp_path / "ann", tmp_path / "coco"


def test_images_in_a_declared_media_root(tmp_path):
    ann, coco = separate_folders(tmp_path)
    together = tmp_path / "together"
    RefcocoAdapter().write_fixture(together)
    dump = lambda outcomes: [o.model_dump() if isinstance(o, Sample) else o.to_dict() for o in outcomes]  # noqa: E731
    assert dump(convert_fixture(RefcocoAdapter(), Roots.of(ann, media=[coco]))) == dump(convert_fixture(RefcocoAdapter(), together))


@pytest.mark.parametrize("declared, reasons", [
    (True, ["annotation_missing", "image_missing", "bad_ref", "bad_sentence"]),  # a link into a declared root is followed
    (False, ["path_escapes_root", "path_escapes_root", "annotation_missing", "path_escapes_root", "bad_ref",
             "path_escapes_root", "path_escapes_root", "path_escapes_root"]),  # one per ref with an annotation
])
def test_a_symlinked_image_folder_must_lead_into_a_declared_root(tmp_path, declared, reasons):
    ann, coco = separate_folders(tmp_path)
    (ann / IMAGES).symlink_to(coco / IMAGES, target_is_directory=True)
    roots = Roots.of(ann, media=[coco] if declared else [])
    outcomes = convert_fixture(RefcocoAdapter(), roots)
    assert [o.reason for o in outcomes if not isinstance(o, Sample)] == reasons


def test_malicious_refs_pickle_runs_nothing_and_is_one_reject(root, tmp_path):
    marker = tmp_path / "pwned"
    (root / "refcoco+/refs(unc).p").write_bytes(pickle.dumps([TouchOnLoad(marker)], protocol=2))
    unit = RefcocoAdapter().units(Roots.of(root))[1]
    outcomes = list(RefcocoAdapter().convert(root, unit))
    assert [(r.reason, r.locator) for r in outcomes] == [("unsafe_pickle", "refcoco+/refs(unc).p")]
    assert not marker.exists()


def test_refs_that_are_not_a_list(root):
    (root / "refcocog/refs(umd).p").write_bytes(pickle.dumps({"refs": []}))
    unit = RefcocoAdapter().units(Roots.of(root))[2]
    assert [(r.reason, r.message) for r in RefcocoAdapter().convert(root, unit)] == [("bad_refs", "expected a list of refs, found dict")]


def test_missing_release_names_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"none of refcoco/refs\(unc\).p, .* found"):
        RefcocoAdapter().units(Roots.of(tmp_path))
