"""One broken sample per reject reason, each rejected with exactly that reason."""

import pytest

from schemas import REASONS, Reject, validate
from schemas import masks
from tests.factories import image_sample, video_sample


def image(**region_frame):
    """image_sample() as a dict, with the first region's first frame updated."""
    data = image_sample().model_dump(mode="json")
    data["regions"][0]["frames"][0].update(region_frame)
    return data


def with_turns(data, *texts, roles=None):
    roles = roles or ["user", "assistant"] * (len(texts) // 2)
    data["conversation"] = [{"role": r, "text": t} for r, t in zip(roles, texts)]
    return data


def broken_samples() -> dict[str, dict]:
    """reason -> a sample dict that breaks exactly that rule."""
    d = {}
    d["schema_error"] = {k: v for k, v in image().items() if k != "task"}
    d["placeholder_out_of_range"] = with_turns(image(), "What is <obj1>?", "car")
    two = image()
    two["regions"].append(two["regions"][0])
    d["region_unreferenced"] = two
    none = image()
    none["regions"] = []
    d["no_regions"] = with_turns(none, "What is this?", "car")
    d["foreign_token"] = with_turns(image(), "What is <obj0>? <region1>", "car")
    d["frame_out_of_range"] = image(frame=1)
    d["mask_size_mismatch"] = image(mask=masks.empty(20, 60))
    d["bad_mask"] = image(mask={"size": [40, 60], "counts": "zz"})
    d["missing_prompt"] = image(mask=None)
    d["empty_mask"] = image(mask=masks.empty(40, 60))
    d["degenerate_box"] = image(box=[5, 5, 5, 9])
    point = image(point=[100, 5])
    point["regions"][0]["prompt"] = "point"
    d["point_out_of_frame"] = point
    d["role_order"] = with_turns(image(), "car", "What is <obj0>?", roles=["assistant", "user"])
    d["empty_turn"] = with_turns(image(), "What is <obj0>?", "  ")
    d["invalid_text"] = with_turns(image(), "What is <obj0>?", "car\ud800")
    no_media = image()
    no_media["media"] = None  # only a region-free general_qa sample may be text-only
    d["no_media"] = no_media
    return d


def test_valid_samples_pass():
    assert validate(image_sample()) == image_sample()
    assert validate(video_sample().model_dump(mode="json")) == video_sample()


def test_every_reason_has_a_case():
    assert sorted(broken_samples()) == sorted(REASONS)


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_each_rule_rejects_with_its_reason(reason):
    with pytest.raises(Reject) as info:
        validate(broken_samples()[reason], locator="file.jsonl:7")
    assert info.value.reason == reason
    assert info.value.locator == "file.jsonl:7"
    assert info.value.to_dict()["reason"] == reason


def test_reject_messages_name_the_problem():
    cases = broken_samples()
    messages = {}
    for reason in ["placeholder_out_of_range", "frame_out_of_range", "mask_size_mismatch", "degenerate_box", "schema_error"]:
        with pytest.raises(Reject) as info:
            validate(cases[reason])
        messages[reason] = info.value.message
    assert messages == {
        "placeholder_out_of_range": "<obj1> named but only 1 regions",
        "frame_out_of_range": "region 0 frame 1: media has 1 frames",
        "mask_size_mismatch": "region 0 frame 0: RLE size [20, 60] vs media [40, 60]",
        "degenerate_box": "region 0 frame 0: box [5.0, 5.0, 5.0, 9.0] in a 60x40 frame",
        "schema_error": "task: Field required",
    }


def test_video_frame_limit_uses_frame_count():
    data = video_sample().model_dump(mode="json")
    data["regions"][1]["frames"][0]["frame"] = 3
    with pytest.raises(Reject, match="frame_out_of_range: region 1 frame 3: media has 3 frames"):
        validate(data)
    # a video file with unknown frame count cannot be checked, so it passes
    data["media"].update(frames=[], timestamps=[], path="v.mp4")
    assert validate(data).regions[1].frames[0].frame == 3


def test_general_qa_may_have_no_regions():
    data = with_turns(image(), "What colour is the sky?", "Blue.")
    data["regions"] = []
    data["task"] = "general_qa"
    assert validate(data).regions == []
