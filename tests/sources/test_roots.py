"""Declared roots: media lookup order and containment (what a dataset file may and may not name)."""

import pytest

from schemas import Reject
from sources.roots import Roots


@pytest.fixture
def tree(tmp_path):
    """ann/ (annotations + one image), coco/ and extra/ media roots, outside/ undeclared."""
    for path in ["ann/a.jpg", "coco/train2017/b.jpg", "extra/train2017/b.jpg", "extra/c.jpg", "outside/secret.jpg"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(path.encode())
    return tmp_path, Roots.of(tmp_path / "ann", media=[tmp_path / "coco", tmp_path / "extra"])


def reason(roots, relative):
    with pytest.raises(Reject) as err:
        roots.media_path(relative, "file.json[0]")
    assert err.value.locator == "file.json[0]"
    return err.value.reason


def test_lookup_order_is_annotation_root_then_media_roots(tree):
    tmp, roots = tree
    assert roots.declared == ((tmp / "ann").resolve(), (tmp / "coco").resolve(), (tmp / "extra").resolve())
    assert roots.media_path("a.jpg").read_bytes() == b"ann/a.jpg"
    assert roots.media_path("train2017/b.jpg").read_bytes() == b"coco/train2017/b.jpg"  # first root that has it
    assert roots.media_path("c.jpg").read_bytes() == b"extra/c.jpg"
    # a missing file is placed under the annotation root, for the caller's `image_missing`
    assert roots.media_path("nope.jpg") == (tmp / "ann" / "nope.jpg").resolve()
    assert roots.media_path("b.jpg", under="train2017").read_bytes() == b"coco/train2017/b.jpg"


def test_paths_from_dataset_files_cannot_leave_the_declared_roots(tree):
    tmp, roots = tree
    assert reason(roots, "../outside/secret.jpg") == "path_escapes_root"
    assert reason(roots, "train2017/../../outside/secret.jpg") == "path_escapes_root"
    assert reason(roots, str(tmp / "outside/secret.jpg")) == "path_escapes_root"
    assert reason(roots, "") == "path_escapes_root"
    (tmp / "ann/link.jpg").symlink_to(tmp / "outside/secret.jpg")
    assert reason(roots, "link.jpg") == "path_escapes_root"
    assert reason(roots, "x" * 5000 + ".jpg") == "bad_path"  # longer than the file system allows
    assert reason(roots, "a\ud800.jpg") == "bad_path"  # a lone surrogate cannot be a file name
    assert reason(roots, "a\x00.jpg") == "bad_path"


def test_a_link_the_user_placed_into_another_declared_root_is_followed(tree):
    tmp, roots = tree
    (tmp / "ann/images").symlink_to(tmp / "coco/train2017")
    assert roots.media_path("images/b.jpg").read_bytes() == b"coco/train2017/b.jpg"
    # the same link is refused when its target is not declared
    assert reason(Roots.of(tmp / "ann"), "images/b.jpg") == "path_escapes_root"


def test_roots_round_trip_through_json(tree):
    tmp, roots = tree
    assert Roots.from_json(roots.to_json()) == roots
    assert roots.to_json() == {"root": str((tmp / "ann").resolve()),
                               "media": [str((tmp / "coco").resolve()), str((tmp / "extra").resolve())]}
    assert Roots.of(roots) is roots and Roots.of(tmp / "ann") == Roots((tmp / "ann").resolve())


def test_an_image_header_declaring_a_bomb_is_rejected_unread(tmp_path):
    """A 30000x30000 PNG that compresses to a few hundred KB: rejected from its header alone."""
    import zlib

    from sources.common import image_size

    width = height = 30000
    row = b"\x00" + bytes(width)  # filter byte + one grey pixel per column
    body = zlib.compress(row * 64, 9)  # a truncated IDAT: the header alone must decide

    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    with pytest.raises(Reject) as err:
        image_size(Roots.of(tmp_path), "bomb.png", "x.json[0]")
    assert (err.value.reason, err.value.locator) == ("image_too_large", "x.json[0]")
