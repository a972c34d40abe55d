"""MDVP-Data adapter (sources/mdvp.py) over its native-format fixture."""

import json
import shutil

import pytest

from schemas import Reject, Sample
from sources import fixtures, mdvp
from sources.common import image_size
from sources.jsonrecords import JsonRecord
from sources.mdvp import DATA, IMAGES, MdvpAdapter
from sources.roots import Roots
from tests.sources.fixture_outcomes import fixture_outcomes, samples_by_id
from tests.sources.test_registry import convert_fixture, split_outcomes

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
        MdvpAdapter().units(Roots.of(tmp_path))


ASK = [{"from": "human", "value": "<Mark 1>?"}, {"from": "gpt", "value": "A dot."}]


def convert_record(root, record):
    """The outcome of one hand-written record (index 4 of a QA file), next to an 8x8 `images/a.jpg`."""
    fixtures.write_image(root / "images/a.jpg", 8, 8)
    return MdvpAdapter().outcomes(Roots.of(root), JsonRecord(f"{DATA}/QA/x.json", 4, record), f"{DATA}/QA/x.json[4]")


@pytest.mark.parametrize("record, reason", [
    ({"image": "a.jpg", "points": [[1, 2, 3]], "conversations": ASK}, "bad_prompt"),
    ({"image": "a.jpg", "points": [[True, 2]], "conversations": ASK}, "bad_prompt"),
    ({"image": "a.jpg", "points": [[float("nan"), 2]], "conversations": ASK}, "bad_prompt"),
    ({"image": "a.jpg", "bbox": [[1, 1, float("inf"), 2]], "conversations": ASK}, "bad_prompt"),
    ({"image": "a.jpg", "bbox": [["1", 1, 2, 2]], "conversations": ASK}, "bad_prompt"),
    ({"image": "a.jpg", "bbox": [], "conversations": ASK}, "bad_prompt"),
    ({"image": "a.jpg", "bbox": "1,2,3,4", "conversations": ASK}, "bad_prompt"),
    ({"image": "a.jpg", "conversations": ASK}, "bad_prompt"),
    ({"image": "/abs/../a.jpg", "points": [[1, 1]], "conversations": ASK}, "path_escapes_root"),
    ({"image": 3, "points": [[1, 1]], "conversations": ASK}, "bad_record"),
    ("a.jpg", "bad_record"),
    ({"image": "a.jpg", "points": [[1, 1]], "conversations": "<Mark 1>?"}, "bad_turn"),
    ({"image": "a.jpg", "points": [[1, 1]], "conversations": [ASK[0]]}, "role_order"),  # no answer
    ({"image": "a.jpg", "points": [[1, 1]], "conversations": [ASK[0], {"from": "gpt", "value": "\udfff"}]}, "invalid_text"),
])
def test_handmade_bad_records(tmp_path, record, reason):
    with pytest.raises(Reject) as err:
        convert_record(tmp_path, record)
    assert (err.value.reason, err.value.locator) == (reason, f"{DATA}/QA/x.json[4]")


def test_handmade_point_record(tmp_path):
    record = {"image": "C:\\data\\a.jpg", "points": [[8, 0]], "conversations": ASK}  # a Windows path, edge point
    sample = convert_record(tmp_path, record)
    assert (sample.id, sample.media.path, sample.regions[0].frames[0].point) == ("mdvp/QA:x/4", "images/a.jpg", (8.0, 0.0))


def test_mdvp_data_without_the_stage_folder(tmp_path, outcomes):
    MdvpAdapter().write_fixture(tmp_path)
    (tmp_path / DATA).rename(tmp_path / "MDVP-Data")
    bare = convert_fixture(MdvpAdapter(), tmp_path)
    # the same samples and rejects; only files and locators name the shorter path
    assert dump_text(bare) == dump_text(outcomes).replace("stage_2_fine-tuning/", "")


def test_mdvp_data_twice_is_an_error(tmp_path):
    MdvpAdapter().write_fixture(tmp_path)
    shutil.copytree(tmp_path / DATA, tmp_path / "MDVP-Data")
    with pytest.raises(ValueError, match="holds both stage_2_fine-tuning/MDVP-Data and MDVP-Data; keep one"):
        MdvpAdapter().units(Roots.of(tmp_path))


def dump_text(outcomes):
    return json.dumps([o.model_dump() if isinstance(o, Sample) else o.to_dict() for o in outcomes])


def test_images_in_a_declared_media_root(tmp_path, outcomes):
    """The image sets in a media root of their own, without the `images/` folder."""
    MdvpAdapter().write_fixture(tmp_path / "mdvp")
    (tmp_path / "mdvp" / IMAGES).rename(tmp_path / "media")
    separate = convert_fixture(MdvpAdapter(), Roots.of(tmp_path / "mdvp", media=[tmp_path / "media"]))
    assert [o.media.path for o in separate if isinstance(o, Sample)] == [
        "coco/train2017/000000000201.jpg", "coco/train2017/000000000201.jpg", "coco/train2017/000000000201.jpg",
        "vg/VG_100K/2345678.jpg", "sa_1.jpg"]
    assert dump_text(separate) == dump_text(outcomes).replace('"path": "images/', '"path": "')


@pytest.mark.parametrize("declared", [True, False])
def test_a_symlinked_image_folder_must_lead_into_a_declared_root(tmp_path, outcomes, declared):
    MdvpAdapter().write_fixture(tmp_path / "mdvp")
    shutil.move(tmp_path / "mdvp" / IMAGES, tmp_path / "other" / IMAGES)
    (tmp_path / "mdvp" / IMAGES).symlink_to(tmp_path / "other" / IMAGES, target_is_directory=True)
    linked = convert_fixture(MdvpAdapter(), Roots.of(tmp_path / "mdvp", media=[tmp_path / "other"] if declared else []))
    if declared:
        assert dump_text(linked) == dump_text(outcomes)
    else:  # every record: its first candidate leads out of the roots, or its path climbs with '..'
        assert [o.reason for o in linked] == ["path_escapes_root"] * 10


def test_an_unexpected_failure_is_one_adapter_error(tmp_path, monkeypatch):
    def fail_on_sa_1(roots, path, locator):
        if path.endswith("sa_1.jpg"):
            raise RuntimeError("decoder crashed")
        return image_size(roots, path, locator)

    monkeypatch.setattr(mdvp, "image_size", fail_on_sa_1)
    outcomes = fixture_outcomes(MdvpAdapter(), tmp_path)
    read = sum(len(json.loads(f.read_text())) for f in (tmp_path / DATA).glob("**/*.json"))
    samples, rejects = split_outcomes(outcomes)
    assert (read, len(samples), len(rejects)) == (10, 4, 6)
    assert [(r.reason, r.locator, r.message) for r in rejects if r.reason == "adapter_error"] == [
        ("adapter_error", f"{DETAIL}[4]", "RuntimeError: decoder crashed")]
