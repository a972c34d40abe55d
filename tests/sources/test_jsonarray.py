"""Byte-range planning and reading of top-level JSON arrays (sources/jsonarray.py)."""

import json

import pytest

from sources import jsonarray

RECORDS = [{"a": "é日本", "b": [1, 2, {"c": "]},"}]}, 12345, "x,]", None, [], 3.5e10, {"id": 7}]


@pytest.fixture
def small_window(monkeypatch):
    """A 7-byte window forces every element across window boundaries (numbers included)."""
    monkeypatch.setattr(jsonarray, "WINDOW", 7)


def test_offsets_are_exact_byte_ranges_even_across_small_windows(tmp_path, small_window):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(RECORDS, ensure_ascii=False, indent=2), encoding="utf-8")
    data = path.read_bytes()
    found = list(jsonarray.elements(path))
    assert [i for i, *_ in found] == list(range(len(RECORDS)))
    assert [json.loads(data[start:end]) for _, start, end, _ in found] == RECORDS
    assert [v for *_, v in found][1:] == RECORDS[1:]  # non-string values are exact in the pass


def test_spans_group_by_size_and_read_back_utf8(tmp_path, small_window):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(RECORDS, ensure_ascii=False), encoding="utf-8")
    spans = jsonarray.spans(path, target_bytes=20, note=lambda v: type(v).__name__)
    # a span closes once it reaches 20 bytes: `12345, "x,]", null, []` is 22
    assert [(s["first"], s["count"], s["notes"]) for s in spans] == [
        (0, 1, ["dict"]), (1, 4, ["int", "str", "NoneType", "list"]), (5, 2, ["float", "dict"])]
    assert [r for s in spans for r in jsonarray.read_span(path, s)] == RECORDS


def test_bom_and_empty_array(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b"\xef\xbb\xbf [ ]")
    assert jsonarray.spans(path) == []
    path.write_bytes(b"\xef\xbb\xbf[1]")
    assert [(s["start"], s["end"]) for s in jsonarray.spans(path)] == [(4, 5)]


@pytest.mark.parametrize("text, message", [
    ('{"a": 1}', "expected a JSON array (a list of records), found '{' at byte 0"),
    ("[1, 2", "expected ',' or ']' at byte 5, found ''"),
    ("[1 2]", "expected ',' or ']' at byte 3, found '2'"),
    ("[1,]", "trailing ',' before ']' at byte 3"),
    ('[1, {"a": }]', "invalid JSON at byte 10: Expecting value"),
])
def test_malformed_files_name_the_file_and_byte(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        list(jsonarray.elements(path))
    assert str(err.value) == f"{path}: {message}"


def test_a_changed_file_is_detected_when_a_span_is_read(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("[1, 2, 3]")
    span = jsonarray.spans(path)[0]
    path.write_text("[1, 2]   ")
    with pytest.raises(ValueError, match="changed after its units were planned"):
        jsonarray.read_span(path, span)
