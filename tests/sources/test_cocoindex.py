"""The on-disk COCO index: a unit loads only its records, grouped as parsing the whole file would,
and `jsonarray.members` streams a top-level object with byte spans."""

import json

import pytest

from sources import cocoindex, jsonarray

# image 2 listed twice; annotation 5 names no image, 6 has image_id True (== 1, as `isinstance`
# and dict lookup have it), 7 a string image_id; two annotations share id 3 (file order kept)
DATA = {
    "info": {"note": "é"},
    "images": [{"id": 3, "f": "c"}, {"id": 1, "f": "ä"}, {"id": 2, "f": "b"}, "bad", {"id": 2, "f": "b2"}, {"id": 4}],
    "annotations": [
        {"id": 3, "image_id": 3, "k": "second-by-file"}, {"id": 9, "image_id": 1}, {"id": 3, "image_id": 1, "k": "x"},
        {"id": 5, "image_id": 77}, {"id": 6, "image_id": True}, {"id": 7, "image_id": "1"}, {"id": 8, "image_id": 2},
        {"id": 1, "image_id": 3}, {"image_id": 1},
    ],
    "categories": [{"id": 1, "name": "a"}, {"id": True}, {"id": 1, "name": "b"}],
}


@pytest.fixture
def coco(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELREFER_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(DATA, ensure_ascii=False), encoding="utf-8")
    return path


def test_the_whole_index_groups_as_the_parsed_file(coco):
    index = cocoindex.open_index(coco).load()
    assert list(index.images) == [1, 3, 4] and index.images[1] == {"id": 1, "f": "ä"}  # UTF-8, not latin-1
    # by ascending annotation id, equal ids in file order; keys in the order of each image's first annotation
    assert {k: [a["id"] for a in v] for k, v in index.annotations.items()} == {3: [1, 3], 1: [3, 6, 9]}
    assert list(index.annotations) == [3, 1]
    assert [a["id"] for a in index.orphans] == [5, 7]
    assert index.duplicates == {2: 1}
    assert index.malformed == ["images[3]", "annotations[8]", "categories[1]"]
    assert index.categories == {1: {"id": 1, "name": "b"}}


def test_a_unit_loads_its_images_and_only_the_last_unit_the_file_s_problems(coco):
    index = cocoindex.open_index(coco)
    assert index.count == 3
    first, last = index.load(0, 2, last=False), index.load(2, 4, last=True)
    assert (list(first.images), list(first.annotations), first.orphans, first.duplicates, first.malformed) == (
        [1, 3], [3, 1], [], {}, [])
    assert (list(last.images), last.annotations, [a["id"] for a in last.orphans], last.duplicates) == ([4], {}, [5, 7], {2: 1})
    assert first.categories == last.categories == {1: {"id": 1, "name": "b"}}


def test_the_index_is_written_once_per_file_version_and_the_old_one_removed(coco, tmp_path):
    cocoindex.open_index(coco)
    (folder,) = (tmp_path / "cache").iterdir()
    before = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert [name.split(".", 1)[1] for name in before] == ["anns.npy", "images.npy", "json"]
    coco.write_text(json.dumps({**DATA, "images": DATA["images"][:2]}), encoding="utf-8")
    assert cocoindex.open_index(coco).count == 2
    after = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert len(after) == 3 and not set(after) & set(before)


def test_a_file_without_the_three_lists_names_the_first_missing(tmp_path, monkeypatch):
    """An empty images list counts as a list; a file whose top level is no object is no COCO file."""
    monkeypatch.setenv("PIXELREFER_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"images": [], "annotations": {}}))
    with pytest.raises(ValueError, match=r"^f.json: not a COCO-style annotation file \(no list 'annotations' at the top level\)$"):
        cocoindex.open_index(path)
    path.write_text("[1]")
    with pytest.raises(ValueError, match=r"^f.json: not a COCO-style annotation file \(no list 'images'"):
        cocoindex.open_index(path)


def test_members_streams_the_named_arrays_with_byte_spans(tmp_path):
    path = tmp_path / "f.json"
    raw = b'{"a": [1, {"x": "\xc3\xa9"}], "b": {"c": []}, "d": []}'
    path.write_bytes(raw)
    got = list(jsonarray.members(path, {"a", "d"}))
    assert [(k, i, raw[s:e]) for k, i, s, e, _ in got] == [
        ("a", 0, b"1"), ("a", 1, b'{"x": "\xc3\xa9"}'), ("a", None, b'[1, {"x": "\xc3\xa9"}]'),
        ("b", None, b'{"c": []}'), ("d", None, b"[]")]
    assert got[2][4] is got[4][4] is jsonarray.STREAMED and got[3][4] == {"c": []}


@pytest.mark.parametrize(("data", "message"), [
    (b'{"a": 1, "a": 2}', "invalid JSON at byte 9 (key 'a' is listed twice at the top level)"),
    (b'{"a": [1, 2', "truncated JSON at byte 11 (expected ',' or ']')"),
    (b'{"a": 1,}', "invalid JSON at byte 8 (trailing ',' before '}')"),
    (b'{"a": 1} x', "invalid JSON at byte 9 (found 'x' after the object's closing '}')"),
])
def test_members_errors_name_the_file_and_byte(tmp_path, data, message):
    path = tmp_path / "f.json"
    path.write_bytes(data)
    with pytest.raises(jsonarray.JsonFileError) as err:
        list(jsonarray.members(path, {"a"}))
    assert str(err.value) == f"{path}: {message}"
    path.write_bytes(b" []")
    with pytest.raises(jsonarray.NotAnObject, match="f.json: not a JSON object at byte 1"):
        list(jsonarray.members(path, {"a"}))
