"""DAM adapter: one sample per region from WebDataset tars; untrusted pickles never run code."""

import io
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from schemas import masks
from sources.dam import FIXTURE_RECTS, FIXTURE_SIZE, DamAdapter
from sources.fixtures import rect_mask
from sources.media import read_media_bytes
from tests.sources.test_registry import convert_fixture, split_outcomes

TAR = "COCOStuff/images/00000000.tar"


class Exploit:
    """Unpickling this would call builtins.open(path, "w"), creating a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture()
def root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the fixture's malicious pickle would create DAM_PWNED
    DamAdapter().write_fixture(tmp_path)
    return tmp_path


def outcomes(root):
    samples, rejects = split_outcomes(convert_fixture(DamAdapter(), root))
    return samples, [(r.reason, r.locator) for r in rejects]


def test_one_unit_per_tar(root):
    assert [(u.name, u.spec) for u in DamAdapter().units(root)] == [(TAR, {"tar": TAR})]


def test_samples_one_per_region(root):
    samples, _ = outcomes(root)
    assert [s.id for s in samples] == ["dam/COCOStuff/000000000001_7", "dam/COCOStuff/000000000001_8"]
    for sample, rect in zip(samples, FIXTURE_RECTS):
        assert (sample.task, sample.subset, sample.license) == ("detailed_caption", "COCOStuff", "NVIDIA-Noncommercial")
        assert (sample.media.kind, sample.media.path, sample.media.width, sample.media.height) == (
            "image", f"{TAR}/000000000001.jpg", 40, 30)
        (frame,) = sample.regions[0].frames
        assert (frame.frame, frame.box) == (0, tuple(float(v) for v in rect))
        np.testing.assert_array_equal(masks.decode(frame.mask.model_dump()), rect_mask(*FIXTURE_SIZE, rect).astype(bool))
        assert sample.conversation[0].text == "Describe <obj0> in detail."
    assert [s.conversation[1].text for s in samples] == [
        "A red rectangle with crisp edges \u2014 flat and matte.", "A green panel in the lower right."]
    assert samples[0].meta == {"img_id": "000000000001", "ann_id": 7}
    assert samples[1].provenance.locator == f"{TAR}/000000000001.pickle[1]"
    with Image.open(io.BytesIO(read_media_bytes(root, samples[0].media.path))) as image:
        assert image.size == FIXTURE_SIZE


def test_traps_are_rejected_and_nothing_runs(root):
    _, rejects = outcomes(root)
    assert rejects == [
        ("no_regions", f"{TAR}/000000000002.pickle"),
        ("mask_size_mismatch", f"{TAR}/000000000003.pickle[0] frame 0"),
        ("unsafe_pickle", f"{TAR}/000000000004.pickle"),
        ("unsafe_pickle", f"{TAR}/000000000005.pickle"),
        ("image_missing", f"{TAR}/000000000006"),
    ]
    assert not (root / "DAM_PWNED").exists()


def write_tar(path, members):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_reduce_exploit_executes_nothing(tmp_path):
    target = tmp_path / "created_by_pickle.txt"
    payload = pickle.dumps([Exploit(str(target))])
    jpg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpg, format="JPEG")
    write_tar(tmp_path / "LVIS/images/00000000.tar", [("k1.jpg", jpg.getvalue()), ("k1.pickle", payload)])
    (unit,) = DamAdapter().units(tmp_path)
    (reject,) = DamAdapter().convert(tmp_path, unit)
    assert (reject.reason, reject.locator) == ("unsafe_pickle", "LVIS/images/00000000.tar/k1.pickle")
    assert "io.open" in reject.message  # the global the pickle named, refused before any call
    assert not target.exists()


def test_bad_regions_pickle_shapes_and_orphans(tmp_path):
    jpg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpg, format="JPEG")
    write_tar(tmp_path / "PACO/images/00000001.tar", [
        ("a.jpg", jpg.getvalue()), ("a.pickle", pickle.dumps([{"mask_rle": {"size": [8, 8], "counts": "0"}}])),
        ("b.jpg", jpg.getvalue()), ("b.pickle", pickle.dumps({"not": "a list"})),
        ("c.jpg", jpg.getvalue()),
        ("d.jpg", b"not a jpeg"), ("d.pickle", pickle.dumps([{"mask_rle": masks.encode(np.ones((8, 8), np.uint8)), "caption": "x"}])),
        ("e.pickle", b"garbage"),
    ])
    (unit,) = DamAdapter().units(tmp_path)
    assert [(r.reason, r.locator) for r in DamAdapter().convert(tmp_path, unit)] == [
        ("bad_region", "PACO/images/00000001.tar/a.pickle[0]"),
        ("bad_pickle", "PACO/images/00000001.tar/b.pickle"),
        ("pickle_missing", "PACO/images/00000001.tar/c"),
        ("image_unreadable", "PACO/images/00000001.tar/d"),
        ("bad_pickle", "PACO/images/00000001.tar/e.pickle"),
    ]


def test_missing_shards_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="images/\\*.tar"):
        DamAdapter().units(tmp_path)


def test_truncated_shard_names_the_file(tmp_path):
    jpg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpg, format="JPEG")
    path = tmp_path / "LVIS/images/00000002.tar"
    write_tar(path, [("k.jpg", jpg.getvalue()), ("k.pickle", pickle.dumps([]))])
    path.write_bytes(path.read_bytes()[:700])
    (unit,) = DamAdapter().units(tmp_path)
    with pytest.raises(ValueError, match="00000002.tar: not a readable tar"):
        list(DamAdapter().convert(tmp_path, unit))
