"""MDVP-Data adapter (sources/mdvp.py) over its native-format fixture."""

import pytest

from schemas import Reject
from sources import fixtures
from sources.mdvp import DATA, MdvpAdapter
from tests.sources.fixture_outcomes import fixture_outcomes, samples_by_id
from tests.sources.test_registry import split_outcomes

QA = f"{DATA}/QA/gpt4v_coco_qa_box.json"
DETAIL = f"{DATA}/detailed_caption/gpt4v_vg_detailed_caption_point.json"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return fixture_outcomes(MdvpAdapter(), tmp_path_factory.mktemp("mdvp"))


def prompts(sample):
    return [(r.prompt, r.mask_origin, r.frames[0].mask, r.frames[0].box, r.frames[0].point) for r in sample.regions]


def test_ids_tasks_and_image_mapping(outcomes):
    assert [(s.id, s.task, s.media.path, s.meta["image"]) for s in samples_by_id(outcomes).values()] == [
        ("mdvp/QA:gpt4v_coco_qa_box/0", "region_qa", "images/coco/train2017/000000000201.jpg",
         "coco/train2017/000000000201.jpg"),
        ("mdvp/QA:gpt4v_coco_qa_box/2", "region_qa", "images/coco/train2017/000000000201.jpg",
         "coco/train2017/000000000201.jpg"),
        ("mdvp/brief_caption:gpt4v_coco_brief_caption_box/0", "phrase_caption",
         "images/coco/train2017/000000000201.jpg", "coco/train2017/000000000201.jpg"),
        # foreign absolute prefix: the longest existing trailing part wins
        ("mdvp/detailed_caption:gpt4v_vg_detailed_caption_point/0", "detailed_caption",
         "images/vg/VG_100K/2345678.jpg", "/mnt/authors/data/vg/VG_100K/2345678.jpg"),
        # only the basename exists under images/
        ("mdvp/detailed_caption:gpt4v_vg_detailed_caption_point/4", "detailed_caption",
         "images/sa_1.jpg", "sam/foreign/prefix/sa_1.jpg"),
    ]


def test_points_and_boxes_stay_points_and_boxes(outcomes):
    by_id = samples_by_id(outcomes)
    assert prompts(by_id["mdvp/detailed_caption:gpt4v_vg_detailed_caption_point/0"]) == [
        ("point", None, None, None, (16.0, 14.0)), ("point", None, None, None, (40.5, 30.0))]
    assert prompts(by_id["mdvp/QA:gpt4v_coco_qa_box/0"]) == [  # [x, y, w, h] -> [x0, y0, x1, y1]
        ("box", None, None, (8.0, 8.0, 24.0, 20.0), None), ("box", None, None, (30.0, 20.0, 50.0, 40.0), None)]
    twelve = by_id["mdvp/QA:gpt4v_coco_qa_box/2"]  # more than 10 prompts: all kept
    assert [r.frames[0].box for r in twelve.regions] == [(float(x), 2.0, x + 4.0, 6.0) for x in range(0, 60, 5)]
    assert twelve.meta["num_prompts"] == 12


def test_conversation_text_after_dialect_mapping(outcomes):
    by_id = samples_by_id(outcomes)
    texts = {k: [(t.role, t.text) for t in s.conversation] for k, s in by_id.items()}
    assert texts["mdvp/detailed_caption:gpt4v_vg_detailed_caption_point/0"] == [
        ("user", "Please provide a detailed description of each marked region in the image."),
        ("assistant", "<obj0>: A red box.\n<obj1>: A blue square.")]
    assert texts["mdvp/QA:gpt4v_coco_qa_box/0"] == [
        ("user", "What is in <obj1>?"), ("assistant", "A blue square to the right of <obj0>.")]
    assert texts["mdvp/QA:gpt4v_coco_qa_box/2"][1] == ("assistant", " ".join(f"<obj{i}>" for i in range(12)))
    # leading gpt turn dropped; Mark 1 never named, so only the second point remains, as <obj0>
    dropped = by_id["mdvp/detailed_caption:gpt4v_vg_detailed_caption_point/4"]
    assert texts[dropped.id] == [("user", "What is <obj0>?"), ("assistant", "A blue square.")]
    assert prompts(dropped) == [("point", None, None, None, (40.0, 30.0))]
    assert dropped.meta == {"image": "sam/foreign/prefix/sa_1.jpg", "num_prompts": 2,
                            "dropped_leading_turns": 1, "unreferenced_regions": [1]}


def test_traps_are_rejected_with_reasons(outcomes):
    _, rejects = split_outcomes(outcomes)
    assert [(r.reason, r.locator) for r in rejects] == [
        ("degenerate_box", f"{QA}[1]"),  # box runs past the image
        ("bad_prompt", f"{QA}[3]"),  # both points and bbox
        ("point_out_of_frame", f"{DETAIL}[1]"),
        ("path_escapes_root", f"{DETAIL}[2]"),  # ../../outside/...
        ("image_missing", f"{DETAIL}[3]"),
    ]
    assert rejects[4].message == "no image file at images/coco/train2017/000000000404.jpg"


def test_no_data_files_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no JSON files under"):
        MdvpAdapter().units(tmp_path)


ASK = [{"from": "human", "value": "<Mark 1>?"}, {"from": "gpt", "value": "A dot."}]


@pytest.mark.parametrize("record, reason", [
    ({"image": "a.jpg", "points": [[1, 2, 3]], "conversations": ASK}, "bad_prompt"),
    ({"image": "a.jpg", "points": [[True, 2]], "conversations": ASK}, "bad_prompt"),
    ({"image": "a.jpg", "bbox": [], "conversations": ASK}, "bad_prompt"),
    ({"image": "a.jpg", "bbox": "1,2,3,4", "conversations": ASK}, "bad_prompt"),
    ({"image": "a.jpg", "conversations": ASK}, "bad_prompt"),
    ({"image": "/abs/../a.jpg", "points": [[1, 1]], "conversations": ASK}, "path_escapes_root"),
    ({"image": 3, "points": [[1, 1]], "conversations": ASK}, "bad_record"),
    ({"image": "a.jpg", "points": [[1, 1]], "conversations": "<Mark 1>?"}, "bad_turn"),
    ({"image": "a.jpg", "points": [[1, 1]], "conversations": [ASK[0]]}, "role_order"),  # no answer
])
def test_handmade_bad_records(tmp_path, record, reason):
    fixtures.write_image(tmp_path / "images/a.jpg", 8, 8)
    with pytest.raises(Reject) as err:
        MdvpAdapter().sample(tmp_path, f"{DATA}/QA/x.json", 4, record)
    assert (err.value.reason, err.value.locator) == (reason, f"{DATA}/QA/x.json[4]")


def test_handmade_point_record(tmp_path):
    fixtures.write_image(tmp_path / "images/a.jpg", 8, 8)
    record = {"image": "C:\\data\\a.jpg", "points": [[8, 0]], "conversations": ASK}  # a Windows path, edge point
    sample = MdvpAdapter().sample(tmp_path, f"{DATA}/QA/x.json", 4, record)
    assert (sample.id, sample.media.path, sample.regions[0].frames[0].point) == ("mdvp/QA:x/4", "images/a.jpg", (8.0, 0.0))
