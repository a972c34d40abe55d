"""Sample <-> dict <-> JSON <-> Arrow row round trips, ids and keys."""

import json

import datasets
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from schemas import Sample, key_for, make_id
from schemas.arrow import SAMPLE_SCHEMA, from_row, read_parquet, to_row, to_table, write_parquet
from tests.factories import image_sample, video_sample

SAMPLES = [image_sample(), video_sample()]


@pytest.mark.parametrize("sample", SAMPLES, ids=["image", "video"])
def test_round_trips_are_lossless(sample):
    assert Sample.model_validate(sample.model_dump()) == sample
    assert Sample.model_validate_json(sample.model_dump_json()) == sample
    assert Sample.model_validate(json.loads(sample.model_dump_json())) == sample
    assert from_row(to_row(sample)) == sample
    table = to_table([sample])
    assert table.schema == SAMPLE_SCHEMA
    assert from_row(table.to_pylist()[0]) == sample


def test_arrow_row_holds_exact_values():
    row = to_row(image_sample())
    assert row["key"] == "lvis~val2017~42"
    assert row["meta_json"] == '{"neg_category_ids":[3,7],"note":"ünïcode"}'
    assert row["regions"][0]["frames"][0]["box"] == [20.0, 10.0, 28.0, 18.0]
    assert row["regions"][0]["frames"][0]["mask"]["size"] == [40, 60]
    assert row["media"]["frames"] == [] and row["media"]["fps"] is None


def test_parquet_is_deterministic_and_loads_with_datasets(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    write_parquet(SAMPLES, a)
    write_parquet(SAMPLES, b)
    assert a.read_bytes() == b.read_bytes()
    assert read_parquet(a) == SAMPLES
    assert pq.read_schema(a).remove_metadata() == SAMPLE_SCHEMA
    ds = datasets.load_dataset("parquet", data_files=str(a), split="train")
    assert ds["id"] == ["lvis/val2017/42", "mevis/train/vid1_exp0"]
    assert ds[1]["regions"][1]["frames"][0]["box"] == [20.0, 20.0, 25.0, 25.0]
    assert from_row(ds[1]) == SAMPLES[1]


def test_make_id_and_key():
    assert make_id("lvis", "val2017", 42) == "lvis/val2017/42"
    panda = make_id("videorefer", "detailed", "rLlzmcp3J6s_0:01:09.633_0:01:14.333")
    # sha1("rLlzmcp3J6s_0:01:09.633_0:01:14.333")[:8] == "c34d9b4a"
    assert panda == "videorefer/detailed/rLlzmcp3J6s_0:01:09_633_0:01:14_333-c34d9b4a"
    assert make_id("x", "y", "a.b") != make_id("x", "y", "a_b")
    assert key_for("videorefer/qa/a:b") == "videorefer~qa~a:b"
    assert "." not in key_for(panda) and "/" not in key_for(panda)


def test_id_rules_are_enforced():
    with pytest.raises(ValidationError, match="must be 'lvis/val2017/<native_id>'"):
        image_sample(id="paco/val2017/42")
    with pytest.raises(ValidationError, match="characters outside"):
        image_sample(id="lvis/val2017/4.2")
    with pytest.raises(ValidationError, match="does not match id"):
        image_sample(key="other")
    with pytest.raises(ValidationError, match="strictly increasing"):
        Sample.model_validate({**video_sample().model_dump(), "regions": [
            {"prompt": "box", "frames": [{"frame": 2, "box": [0, 0, 1, 1]}, {"frame": 1, "box": [0, 0, 1, 1]}]}]})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Sample.model_validate({**image_sample().model_dump(), "bogus": 1})


def test_checked_in_example_file_matches_the_factories():
    from pathlib import Path

    lines = (Path(__file__).parents[1] / "data" / "example_samples.jsonl").read_text().splitlines()
    assert [Sample.model_validate_json(line) for line in lines] == SAMPLES
