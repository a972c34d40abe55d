"""LLaVA-style adapter on its fixture: video, image and text-only general QA, and trap rejects."""

import json

import pytest

from schemas import Reject
from sources.llava import IMAGE_FILE, TEXT_FILE, VIDEO_FILE, LlavaAdapter
from sources.roots import Roots
from tests.sources.fixture_outcomes import fixture_outcomes, samples_by_id


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return fixture_outcomes(LlavaAdapter(), tmp_path_factory.mktemp("llava"))


def test_units_one_per_span_of_every_file(tmp_path):
    LlavaAdapter().write_fixture(tmp_path)
    assert [(u.name, u.spec["file"], u.spec["count"]) for u in LlavaAdapter().units(Roots.of(tmp_path))] == [
        ("0_30_s_academic_oe_v0_1_qa_processed-00000000", VIDEO_FILE, 2),
        ("magpie_pro_text-00000000", TEXT_FILE, 4),
        ("sharegpt4v_coco-00000000", IMAGE_FILE, 3),
    ]


def test_video_image_and_text_only_samples(outcomes):
    samples = samples_by_id(outcomes)
    assert sorted(samples) == ["llava/0_30_s_academic_oe_v0_1_qa_processed/0", "llava/magpie_pro_text/0",
                               "llava/magpie_pro_text/1", "llava/sharegpt4v_coco/0"]
    assert all(s.task == "general_qa" and s.regions == [] for s in samples.values())

    video = samples["llava/0_30_s_academic_oe_v0_1_qa_processed/0"]
    assert video.media.model_dump() == {
        "kind": "video", "path": "0_30_s_academic_v0_1/academic_source/Charades/ABC12.mp4", "frames": [],
        "num_frames": 4, "fps": 2.0, "timestamps": [], "width": 32, "height": 24}
    assert [(t.role, t.text) for t in video.conversation] == [
        ("user", "What is the person doing?"), ("assistant", "Walking across the room.")]
    assert video.meta == {"id": "ABC12", "data_source": "0_30_s_academic_v0_1"}

    image = samples["llava/sharegpt4v_coco/0"]
    assert (image.media.kind, image.media.path, image.media.width, image.media.height) == (
        "image", "onevision/coco/000000000009.jpg", 40, 30)
    assert [t.text for t in image.conversation] == ["Describe the image.", "A red square on grey.", "Is it big?", "No."]

    text = samples["llava/magpie_pro_text/0"]
    assert text.media is None
    assert [(t.role, t.text) for t in text.conversation] == [
        ("system", "You are helpful."), ("user", "What is 2 + 2?"), ("assistant", "4")]
    assert (text.provenance.file, text.provenance.locator) == (TEXT_FILE, f"{TEXT_FILE}[0]")


def test_traps_are_rejected_with_reasons_and_counts_add_up(outcomes):
    rejects = [(o.reason, o.locator) for o in outcomes if isinstance(o, Reject)]
    assert rejects == [
        ("video_missing", f"{VIDEO_FILE}[1]"),
        ("mixed_media", f"{TEXT_FILE}[2]"),
        ("bad_json", f"{TEXT_FILE}[3]"),
        ("multi_image", f"{IMAGE_FILE}[1]"),
        ("role_order", f"{IMAGE_FILE}[2]"),  # starts with the answer
    ]
    assert len(outcomes) == 4 + len(rejects) == 2 + 4 + 3


def test_media_is_also_found_below_the_root_and_never_outside(tmp_path):
    LlavaAdapter().write_fixture(tmp_path)
    (tmp_path / "extra.json").write_text(json.dumps([
        {"id": "a", "image": "onevision/coco/000000000009.jpg", "conversations": [{"from": "human", "value": "<image>?"},
                                                                                  {"from": "gpt", "value": "A square."}]},
        {"id": "b", "image": "../outside.jpg", "conversations": [{"from": "human", "value": "?"}, {"from": "gpt", "value": "!"}]},
        {"id": "c", "conversations": [{"from": "human", "value": "Where is <region1>?"}, {"from": "gpt", "value": "Here."}]},
    ]))
    roots = Roots.of(tmp_path)
    unit = next(u for u in LlavaAdapter().units(roots) if u.spec["file"] == "extra.json")
    first, second, third = LlavaAdapter().convert(roots, unit)
    assert first.media.path == "onevision/coco/000000000009.jpg"
    assert (second.reason, third.reason) == ("path_escapes_root", "foreign_token")


def test_two_files_with_one_subset_name_stop_the_plan(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "qa.json").write_text("[]")
    with pytest.raises(ValueError, match="a/qa.json and b/qa.json both make subset 'qa'"):
        LlavaAdapter().units(Roots.of(tmp_path))
    with pytest.raises(FileNotFoundError, match="no \\*.json / \\*.jsonl"):
        LlavaAdapter().units(Roots.of(tmp_path / "a" / "qa.json"))
