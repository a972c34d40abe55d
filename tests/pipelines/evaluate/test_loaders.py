"""Each benchmark's fixture, written in its native format, read back into unified samples: ids,
prompts, reference answers, region prompts, and the trap records' rejects."""

from __future__ import annotations

import pytest

from pipelines.evaluate.benchmarks import BENCHMARKS, loader_of
from schemas import masks
from sources.roots import Roots

EXPECTED = {  # benchmark -> (sample ids, {rejected locator: reason})
    "osprey-lvis": (["0_0", "0_1", "1_0"], {"lvis_val_1k_category.json[2]": "bad_record"}),
    "osprey-paco": (["0_0", "0_1", "1_0"], {"paco_val_1k_category.json[2]": "bad_record"}),
    "vg-val": (["0", "1"], {"vg_val_5000.json[2]": "degenerate_box"}),
    "ferret-reason": (["0", "1"], {"box_refer_reason.json[2]": "no_reference_answer"}),
    "dlc-bench": (["11", "12"], {"annotations.json[2]": "no_questions"}),
    "videorefer-bench-d": (["0", "1"], {"VideoRefer-Bench-D.json[2]": "no_mask_at_frame_idx"}),
    "videorefer-bench-q": (["0", "1", "2", "3"], {"VideoRefer-Bench-Q.json[4]": "placeholder_count_mismatch"}),
    "hc-stvg-val": (["0", "1"], {"hc_stvg_val.json[2] object 0": "frame_out_of_range"}),
}


def load(name, tmp_path, frame_mode=None):
    loader = loader_of(BENCHMARKS[name], frame_mode)
    loader.write_fixture(tmp_path)
    return loader.load(Roots.of(tmp_path))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_loads_with_its_traps_rejected(name, tmp_path):
    samples, rejects = load(name, tmp_path)
    ids, rejected = EXPECTED[name]
    assert [s.id for s in samples] == [f"{name}/test/{i}" for i in ids]
    assert {r.locator: r.reason for r in rejects} == rejected
    assert all(s.conversation[0].role == "user" and s.conversation[1].role == "assistant" for s in samples)


def test_category_prompt_answer_and_mask(tmp_path):
    samples, _ = load("osprey-lvis", tmp_path)
    first = samples[0]
    assert first.conversation[0].text == "What is the category of <obj0>? Using only one word or phrase."
    assert first.conversation[1].text == "mug" and first.regions[0].label == "mug"
    assert first.media.path == "val2017/000000000201.jpg"
    assert samples[2].media.path == "train2017/000000000202.jpg"  # found in the other COCO folder
    assert masks.bbox(first.regions[0].frames[0].mask.model_dump()) == [8.0, 8.0, 24.0, 20.0]


def test_boxes_stay_box_prompts_with_the_official_rectangle_mask(tmp_path):
    vg, _ = load("vg-val", tmp_path / "vg")
    ferret, _ = load("ferret-reason", tmp_path / "ferret")
    for sample, origin in ((vg[0], "box_rectangle"), (ferret[0], "box_polygon")):
        region = sample.regions[0]
        assert (region.prompt, region.mask_origin) == ("box", origin)
        assert region.frames[0].box == (8.0, 8.0, 24.0, 20.0)
        assert masks.area(region.frames[0].mask.model_dump()) == 16 * 12
    assert vg[0].conversation[0].text == "Please describe <obj0> briefly."
    assert ferret[0].conversation[1].text == "It holds tools." and ferret[0].meta["question_id"] == 0


def test_dlc_keeps_its_questions(tmp_path):
    samples, _ = load("dlc-bench", tmp_path)
    assert samples[0].meta["class_name"] == "box"
    assert [q["type"] for q in samples[0].meta["questions"]] == ["positive", "negative"]
    assert samples[0].media.path == "images/o365_1.jpg"
    assert samples[0].conversation[0].text == ("Please describe the region <obj0> in the image in detail. "
                                               "Do not describe anything else.")  # PixelRefer's infer_dam.py


@pytest.mark.parametrize(("mode", "frames", "rejected"), [("single", [[1], [1]], 1), ("multi", [[0, 1, 2]] * 3, 0)])
def test_bench_d_frame_modes(tmp_path, mode, frames, rejected):
    samples, rejects = load("videorefer-bench-d", tmp_path, mode)
    assert [[f.frame for f in s.regions[0].frames] for s in samples] == frames
    assert len(rejects) == rejected
    assert samples[0].media.path == "Panda-70M-part/clip_0:00:01.000_0:00:02.000.mp4"
    assert samples[0].conversation[0].text == ("There is one object in the video: <obj0>.\n"
                                               "Please describe in detail the marked object in the video.")


def test_bench_q_prompt_and_meta(tmp_path):
    samples, _ = load("videorefer-bench-q", tmp_path)
    assert samples[0].conversation[0].text == ("Where does <obj0> move? (A) Left (B) Right (C) Up (D) Down. "
                                               "Answer with the option's letter from the given choices directly.")
    assert samples[0].meta["type"] == "Basic Questions" and samples[0].conversation[1].text == "(B) Right"
    assert [f.frame for f in samples[0].regions[0].frames] == [0, 2]  # multi-frame by default
    assert len(samples[0].media.frames) == 3


def test_missing_file_names_the_layout(tmp_path):
    from pipelines.errors import UserError

    with pytest.raises(UserError, match="VideoRefer-Bench-Q.json"):
        loader_of(BENCHMARKS["videorefer-bench-q"]).load(Roots.of(tmp_path))
