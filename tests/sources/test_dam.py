"""DAM adapter: one sample per region from WebDataset tars; untrusted pickles never run code,
tar members are checked before they are read."""

import io
import pickle
import tarfile
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from schemas import Reject, masks
from sources.dam import FIXTURE_RECTS, FIXTURE_SIZE, DamAdapter
from sources.fixtures import rect_mask
from sources.media import read_media_bytes
from sources.roots import Roots
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
    assert [(u.name, u.spec) for u in DamAdapter().units(Roots.of(root))] == [(TAR, {"tar": TAR})]


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
    """A tar of `(name, bytes | TarInfo)` members: bytes become a file; a TarInfo is written as it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            if isinstance(data, tarfile.TarInfo):
                tar.addfile(data)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def convert_one(root):
    """Outcomes of the single tar under `root` as (reason or id, locator)."""
    roots = Roots.of(root)
    (unit,) = DamAdapter().units(roots)
    return [(o.reason, o.locator) if isinstance(o, Reject) else (o.id, o.provenance.locator) for o in DamAdapter().convert(roots, unit)]


def jpeg(size=(8, 8)):
    data = io.BytesIO()
    Image.new("RGB", size).save(data, format="JPEG")
    return data.getvalue()


def region(ann_id, caption="A black square.", size=(8, 8), rect=(0, 0, 4, 4)):
    return {"img_id": "k", "ann_id": ann_id, "mask_rle": masks.encode(rect_mask(*size, rect)), "caption": caption}


def test_reduce_exploit_executes_nothing(tmp_path):
    target = tmp_path / "created_by_pickle.txt"
    payload = pickle.dumps([Exploit(str(target))])
    jpg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpg, format="JPEG")
    write_tar(tmp_path / "LVIS/images/00000000.tar", [("k1.jpg", jpg.getvalue()), ("k1.pickle", payload)])
    (unit,) = DamAdapter().units(Roots.of(tmp_path))
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
    (unit,) = DamAdapter().units(Roots.of(tmp_path))
    assert [(r.reason, r.locator) for r in DamAdapter().convert(tmp_path, unit)] == [
        ("bad_region", "PACO/images/00000001.tar/a.pickle[0]"),
        ("bad_pickle", "PACO/images/00000001.tar/b.pickle"),
        ("pickle_missing", "PACO/images/00000001.tar/c"),
        ("image_unreadable", "PACO/images/00000001.tar/d"),
        ("bad_pickle", "PACO/images/00000001.tar/e.pickle"),
    ]


def test_missing_shards_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="images/\\*.tar"):
        DamAdapter().units(Roots.of(tmp_path))


def test_truncated_shard_names_the_file(tmp_path):
    jpg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpg, format="JPEG")
    path = tmp_path / "LVIS/images/00000002.tar"
    write_tar(path, [("k.jpg", jpg.getvalue()), ("k.pickle", pickle.dumps([]))])
    path.write_bytes(path.read_bytes()[:700])
    (unit,) = DamAdapter().units(Roots.of(tmp_path))
    with pytest.raises(ValueError, match="00000002.tar: not a readable tar"):
        list(DamAdapter().convert(tmp_path, unit))


def test_pickles_holding_numpy_values_load(tmp_path):
    # what a pickle written from numpy-typed annotations holds: numpy ids, areas and boxes
    regions = [{**region(np.int64(7)), "area": np.float32(16.0), "bbox": np.array([0, 0, 4, 4], dtype=np.int32)}]
    write_tar(tmp_path / "LVIS/images/00000000.tar", [("k.jpg", jpeg()), ("k.pickle", pickle.dumps(regions, protocol=4))])
    assert convert_one(tmp_path) == [("dam/LVIS/k_7", "LVIS/images/00000000.tar/k.pickle[0]")]
    (sample,) = split_outcomes(convert_fixture(DamAdapter(), tmp_path))[0]
    assert sample.meta == {"img_id": "k", "ann_id": 7} and type(sample.meta["ann_id"]) is int


def test_an_object_array_in_a_pickle_is_refused(tmp_path):
    regions = [{**region(1), "extra": np.array([print], dtype=object)}]
    write_tar(tmp_path / "LVIS/images/00000000.tar", [("k.jpg", jpeg()), ("k.pickle", pickle.dumps(regions, protocol=4))])
    assert convert_one(tmp_path) == [("unsafe_pickle", "LVIS/images/00000000.tar/k.pickle")]


def test_one_bad_region_keeps_the_others(tmp_path):
    regions = [region(1, caption=None), region("\ud800"), region(3)]  # no caption; an id UTF-8 cannot encode
    write_tar(tmp_path / "LVIS/images/00000000.tar", [("k.jpg", jpeg()), ("k.pickle", pickle.dumps(regions, protocol=4))])
    tar = "LVIS/images/00000000.tar/k.pickle"
    assert convert_one(tmp_path) == [("bad_region", f"{tar}[0]"), ("adapter_error", f"{tar}[1]"), ("dam/LVIS/k_3", f"{tar}[2]")]


def test_a_tar_linked_from_outside_the_roots_is_refused(tmp_path):
    write_tar(tmp_path / "elsewhere/00000000.tar", [("k.jpg", jpeg()), ("k.pickle", pickle.dumps([region(1)]))])
    (tmp_path / "dam/LVIS/images").mkdir(parents=True)
    (tmp_path / "dam/LVIS/images/00000000.tar").symlink_to(tmp_path / "elsewhere/00000000.tar")
    assert convert_one(tmp_path / "dam") == [("path_escapes_root", "LVIS/images/00000000.tar")]
    # the same tar declared as a media root is inside the roots: a symlink between roots is fine
    roots = Roots.of(tmp_path / "dam", media=[tmp_path / "elsewhere"])
    (unit,) = DamAdapter().units(roots)
    assert [o.id for o in DamAdapter().convert(roots, unit)] == ["dam/LVIS/k_1"]


def sparse_member(name, size):
    """A GNU sparse (PAX 0.1) member that declares `size` bytes and stores none: one hole."""
    info = tarfile.TarInfo(name)
    info.pax_headers = {"GNU.sparse.major": "0", "GNU.sparse.minor": "1", "GNU.sparse.name": name,
                        "GNU.sparse.realsize": str(size), "GNU.sparse.map": "0,0"}
    return info


def test_tar_members_are_checked_before_they_are_read(tmp_path):
    link = tarfile.TarInfo("d.jpg")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    good = pickle.dumps([region(1)])
    path = tmp_path / "LVIS/images/00000000.tar"
    write_tar(path, [
        ("a.jpg", jpeg()), ("a.pickle", good),
        ("/b.jpg", jpeg()), ("b.pickle", good),
        ("../c.jpg", jpeg()), ("../c.pickle", good),
        ("d.jpg", link), ("d.pickle", good),
        ("e.jpg", jpeg()), ("e.pickle", sparse_member("e.pickle", 4 << 30)),
        ("f.jpg", jpeg()), ("f.pickle", good),
    ])
    tracemalloc.start()
    try:
        outcomes = convert_one(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    tar = "LVIS/images/00000000.tar"
    assert outcomes == [
        ("dam/LVIS/a_1", f"{tar}/a.pickle[0]"),
        ("path_escapes_root", f"{tar}//b.jpg"),
        ("path_escapes_root", f"{tar}/../c.jpg"),
        ("member_not_file", f"{tar}/d.jpg"),
        ("member_too_large", f"{tar}/e.pickle"),
        ("dam/LVIS/f_1", f"{tar}/f.pickle[0]"),
    ]
    assert peak < 32 << 20  # the 4 GiB member was never expanded
