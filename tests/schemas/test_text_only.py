"""Text-only samples: media may be null for a region-free general_qa sample, and for nothing else."""

import pytest

from schemas import Reject, Sample, validate
from schemas.arrow import from_row, to_table
from tests.factories import image_sample


def text_only(**changes) -> dict:
    data = image_sample().model_dump(mode="json")
    data.update(task="general_qa", media=None, regions=[], meta={},
                conversation=[{"role": "user", "text": "What is 2 + 2?"}, {"role": "assistant", "text": "4"}])
    data.update(changes)
    return data


def test_text_only_general_qa_is_valid_and_media_defaults_to_none():
    sample = validate(text_only())
    assert sample.media is None and sample.regions == []
    data = text_only()
    del data["media"]
    assert validate(data).media is None


def test_general_qa_with_media_and_no_regions_is_valid():
    sample = validate(text_only(media=image_sample().media.model_dump()))
    assert sample.media.kind == "image" and sample.regions == []


@pytest.mark.parametrize("task", ["recognition", "region_qa", "video_caption", "video_qa", "detailed_caption"])
def test_media_less_sample_of_another_task_is_no_media(task):
    with pytest.raises(Reject) as info:
        validate(text_only(task=task), locator="x.json[3]")
    assert (info.value.reason, info.value.locator) == ("no_media", "x.json[3]")
    assert info.value.message == (f"task {task} with 0 region(s) needs media; "
                                  "only a region-free general_qa sample may be text-only")


def test_media_less_general_qa_with_regions_is_no_media():
    data = image_sample().model_dump(mode="json")
    data.update(task="general_qa", media=None)
    with pytest.raises(Reject, match="no_media: task general_qa with 1 region"):
        validate(data)


def test_text_only_sample_round_trips_through_arrow_and_json():
    sample = validate(text_only())
    table = to_table([sample])
    assert table.column("media").null_count == 1
    assert from_row(table.to_pylist()[0]) == sample
    assert Sample.model_validate_json(sample.model_dump_json()) == sample
