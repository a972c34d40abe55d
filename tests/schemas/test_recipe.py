"""The recipe model: a stage may re-sample only a stage listed before it; text-only samples have a media filter."""

import pytest
from pydantic import ValidationError

from schemas.recipe import Recipe


def recipe(*stages: tuple[str, str]) -> dict:
    """A recipe of one-entry stages, given as (stage name, entry source)."""
    return {"name": "r", "stages": [{"name": name, "entries": [{"name": "e", "source": source, "count": 1}]}
                                    for name, source in stages]}


def test_an_entry_may_re_sample_an_earlier_stage():
    parsed = Recipe.model_validate(recipe(("s1", "lvis"), ("s2", "vg"), ("s3", "s1")))
    assert parsed.stage_names == {"s1", "s2", "s3"}
    assert [s.entries[0].source for s in parsed.stages] == ["lvis", "vg", "s1"]


@pytest.mark.parametrize("stages, bad", [
    ((("s1", "s1"),), "stage s1, entry e: source s1"),  # itself
    ((("s1", "s2"), ("s2", "lvis")), "stage s1, entry e: source s2"),  # a later stage
])
def test_re_sampling_itself_or_a_later_stage_is_an_error(stages, bad):
    with pytest.raises(ValidationError) as info:
        Recipe.model_validate(recipe(*stages))
    assert f"{bad} is this stage or a later one; an entry may re-sample only a stage listed before its own" in str(info.value)


def test_media_kind_none_selects_text_only_and_supported_is_gone():
    data = recipe(("s1", "llava"))
    data["stages"][0]["entries"][0]["filters"] = {"media_kind": "none"}
    assert Recipe.model_validate(data).stages[0].entries[0].filters.media_kind == "none"
    data["stages"][0]["entries"][0]["supported"] = False  # every published entry is ingestible now
    with pytest.raises(ValidationError, match="supported\n  Extra inputs are not permitted"):
        Recipe.model_validate(data)
