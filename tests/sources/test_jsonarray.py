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


@pytest.mark.parametrize("data, message", [
    (b"", "empty file at byte 0 (expected a JSON array)"),
    (b'{"a": 1}', "not a JSON array at byte 0 (found '{', expected a list of records)"),
    (b"[", "truncated JSON at byte 1 (expected a value or ']')"),
    (b"[1,", "truncated JSON at byte 3 (expected a value)"),
    (b"[1, 2", "truncated JSON at byte 5 (expected ',' or ']')"),
    (b'[1, {"a": 1', "truncated JSON at byte 11 (Expecting ',' delimiter)"),
    (b'[1, "ab', "truncated JSON at byte 7 (unterminated string from byte 4)"),
    (b"[1 2]", "invalid JSON at byte 3 (expected ',' or ']', found '2')"),
    (b"[1,]", "invalid JSON at byte 3 (trailing ',' before ']')"),
    (b'[1, {"a": }]', "invalid JSON at byte 10 (Expecting value)"),
    (b"[1] x", "invalid JSON at byte 4 (found 'x' after the array's closing ']')"),
    (b'[1, "\xff"]', "invalid UTF-8 at byte 5 (invalid start byte)"),
    (b'["\xc3\xa9", "\xc3', "invalid UTF-8 at byte 8 (unexpected end of data)"),
    (b"[" * 200_000, "JSON nested too deeply at byte 513 (more than 512 levels)"),
    (b"[" + b'{"a":' * 200_000, "JSON nested too deeply at byte 2561 (more than 512 levels)"),
])
def test_malformed_files_raise_one_line_naming_the_file_and_byte(tmp_path, data, message):
    path = tmp_path / "bad.json"
    path.write_bytes(data)
    with pytest.raises(jsonarray.JsonFileError) as err:
        list(jsonarray.elements(path))
    assert str(err.value) == f"{path}: {message}"


def test_invalid_utf8_is_found_across_window_boundaries(tmp_path, small_window):
    path = tmp_path / "bad.json"
    path.write_bytes(b'["\xc3\xa9\xc3\xa9\xc3\xa9", "\xe6\x97"]')  # windows split the characters; e6 97 " starts at byte 12
    with pytest.raises(jsonarray.JsonFileError) as err:
        list(jsonarray.elements(path))
    assert str(err.value) == f"{path}: invalid UTF-8 at byte 12 (invalid continuation byte)"


@pytest.mark.parametrize("data, message", [
    (b"", "empty file at byte 0 (expected a JSON value)"),
    (b'{"a": 1', "truncated JSON at byte 7 (Expecting ',' delimiter)"),
    (b'{"a": "ab', "truncated JSON at byte 9 (unterminated string from byte 6)"),
    (b'{"\xc3\xa9": 1, "b": x}', "invalid JSON at byte 15 (Expecting value)"),  # byte, not character, offsets
    (b'{"a": [1]} x', "invalid JSON at byte 11 (Extra data)"),
    (b'\xef\xbb\xbf{"a": \xff}', "invalid UTF-8 at byte 9 (invalid start byte)"),
    (b"[" * 200_000, "JSON nested too deeply at byte 512 (more than 512 levels)"),
])
def test_load_json_errors_are_one_line_naming_the_file_and_byte(tmp_path, data, message):
    path = tmp_path / "bad.json"
    path.write_bytes(data)
    with pytest.raises(jsonarray.JsonFileError) as err:
        jsonarray.load_json(path)
    assert str(err.value) == f"{path}: {message}"


def test_load_json_reads_utf8_with_or_without_bom(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b'\xef\xbb\xbf{"\xc3\xa9": [1, 2.5, null]}')
    assert jsonarray.load_json(path) == {"é": [1, 2.5, None]}
    path.write_bytes(b'[{"a": "\xe6\x97\xa5"}]')
    assert jsonarray.load_json(path) == [{"a": "日"}]


def test_a_changed_file_is_detected_when_a_span_is_read(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("[1, 2, 3]")
    span = jsonarray.spans(path)[0]
    path.write_text("[1, 2]   ")
    with pytest.raises(jsonarray.JsonFileError) as err:
        jsonarray.read_span(path, span)
    assert str(err.value) == (f"{path}: bytes 1-8 are not the planned JSON elements (JSONDecodeError); "
                              "the file changed after its units were planned: plan again")
