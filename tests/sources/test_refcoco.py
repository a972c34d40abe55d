"""RefCOCO family adapter: refs pickle + instances.json -> one phrase caption per sentence."""

import builtins
import pickle

import numpy as np
import pytest

from schemas import masks
from sources.fixtures import rect_mask
from sources.refcoco import DOG, PERSON, QUESTION, RefcocoAdapter
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
    assert [(u.name, u.spec) for u in RefcocoAdapter().units(root)] == [
        ("refcoco_unc", {"refs": "refcoco/refs(unc).p"}),
        ("refcocoplus_unc", {"refs": "refcoco+/refs(unc).p"}),
        ("refcocog_umd", {"refs": "refcocog/refs(umd).p"}),
    ]


def test_one_sample_per_sentence(root):
    samples, _ = split_outcomes(convert_fixture(RefcocoAdapter(), root))
    assert [(s.id, s.split, s.regions[0].label, s.conversation[1].text) for s in samples] == [
        ("refcoco/refcoco_unc/1_11", "train", "person", "Man on the left"),
        ("refcoco/refcoco_unc/1_12", "train", "person", "left guy"),
        ("refcoco/refcoco_unc/2_21", "testA", "dog", "the DOG"),
        ("refcoco/refcocoplus_unc/5_51", "train", "person", "man in red"),
        ("refcoco/refcocog_umd/10_101", "val", "dog", "A brown dog lying on the right."),
    ]
    first = samples[0]
    assert (first.task, first.subset, first.media.path) == ("phrase_caption", "refcoco_unc", "train2014/COCO_train2014_000000000101.jpg")
    assert [(t.role, t.text) for t in first.conversation] == [("user", QUESTION), ("assistant", "Man on the left")]
    assert QUESTION == "Describe <obj0> briefly."
    assert first.meta == {"ref_id": 1, "ann_id": 1001, "image_id": 101, "category_id": 1, "sent_id": 11}
    assert first.provenance.model_dump() == {"file": "refcoco/refs(unc).p", "locator": "refs[ref_id=1].sentences[0]",
                                             "adapter": "refcoco", "adapter_version": "1"}
    for sample, rect in zip(samples, [PERSON, PERSON, DOG, PERSON, DOG]):
        (region,) = sample.regions
        assert (region.prompt, region.frames[0].box) == ("mask", tuple(float(v) for v in rect))
        np.testing.assert_array_equal(masks.decode(region.frames[0].mask.model_dump()), rect_mask(64, 48, rect).astype(bool))


def test_traps(root):
    refs = pickle.loads((root / "refcoco/refs(unc).p").read_bytes())
    refs.append({"ref_id": 6, "ann_id": 1001, "image_id": 101, "split": "train", "sentences": []})
    (root / "refcoco/refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    _, rejects = split_outcomes(convert_fixture(RefcocoAdapter(), root))
    assert [(r.reason, r.locator) for r in rejects] == [
        ("annotation_missing", "refcoco/refs(unc).p:refs[ref_id=3]"),
        ("image_missing", "refcoco/refs(unc).p:refs[ref_id=4]"),
        ("no_sentences", "refcoco/refs(unc).p:refs[ref_id=6]"),
    ]


def test_malicious_refs_pickle_runs_nothing_and_is_one_reject(root, tmp_path):
    marker = tmp_path / "pwned"
    (root / "refcoco+/refs(unc).p").write_bytes(pickle.dumps([TouchOnLoad(marker)], protocol=2))
    unit = RefcocoAdapter().units(root)[1]
    outcomes = list(RefcocoAdapter().convert(root, unit))
    assert [(r.reason, r.locator) for r in outcomes] == [("unsafe_pickle", "refcoco+/refs(unc).p")]
    assert not marker.exists()


def test_refs_that_are_not_a_list_of_dicts(root):
    (root / "refcocog/refs(umd).p").write_bytes(pickle.dumps({"refs": []}))
    unit = RefcocoAdapter().units(root)[2]
    assert [(r.reason, r.message) for r in RefcocoAdapter().convert(root, unit)] == [("bad_refs", "expected a list of ref dicts")]


def test_missing_release_names_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"none of refcoco/refs\(unc\).p, .* found"):
        RefcocoAdapter().units(tmp_path)
