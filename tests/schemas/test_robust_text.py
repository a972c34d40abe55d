"""Text the writers cannot encode (lone surrogates) is a named reject that says where it sits."""

import pyarrow as pa
import pytest

from schemas import Reject, Turn, validate
from schemas.arrow import SAMPLE_SCHEMA, to_row
from tests.factories import image_sample, video_sample


def test_a_lone_surrogate_would_break_the_arrow_write():
    sample = image_sample(meta={"note": "a\ud800b"})
    with pytest.raises(UnicodeEncodeError):
        pa.Table.from_pylist([to_row(sample)], schema=SAMPLE_SCHEMA)


@pytest.mark.parametrize("sample, where", [
    (image_sample(conversation=[Turn(role="user", text="What is <obj0>?"), Turn(role="assistant", text="car\udc80")]),
     "conversation.1.text: lone surrogate '\\udc80' at character 3"),
    (image_sample(meta={"tags": ["ok", "a\ud800b"]}), "meta.tags.1: lone surrogate '\\ud800' at character 1"),
    (image_sample(meta={"deep": {"\udcff": 1}}), "meta.deep (key): lone surrogate '\\udcff' at character 0"),
    (video_sample().model_copy(update={"regions": [r.model_copy(update={"label": "\udfff"}) for r in video_sample().regions]}),
     "regions.0.label: lone surrogate '\\udfff' at character 0"),
])
def test_lone_surrogates_are_rejected_as_invalid_text_naming_the_field(sample, where):
    with pytest.raises(Reject) as info:
        validate(sample)
    assert (info.value.reason, info.value.message, info.value.locator) == ("invalid_text", where, sample.id)
    info.value.to_dict()["detail"].encode("utf-8")  # the rejects file can hold the message


def test_a_bad_key_is_named_before_the_values_under_it():
    with pytest.raises(Reject) as info:
        validate(image_sample(meta={"b\udc80d": ["x\ud800"]}))
    assert info.value.message == "meta (key): lone surrogate '\\udc80' at character 1"


def test_meta_that_is_not_json_is_a_schema_error():
    with pytest.raises(Reject) as info:
        validate(image_sample(meta={"when": object()}))
    assert (info.value.reason, info.value.message) == (
        "schema_error", "not JSON-serialisable: Unable to serialize unknown type: <class 'object'>")


def test_valid_non_ascii_text_passes():
    sample = image_sample(meta={"note": "ünïcode 日本 🚗"}, conversation=[
        Turn(role="user", text="What is <obj0>? 🚗"), Turn(role="assistant", text="voiture")])
    assert validate(sample) == sample
