"""Track facts from masks of known rectangles: exact intervals, centroids, motion, size, relations."""

from __future__ import annotations

from pipelines.videoqa import templates
from pipelines.videoqa.tracks import place, track_facts
from schemas import Region, RegionFrame
from tests.pipelines.videoqa_inputs import video_sample

RIGHT = [(2, 2, 10, 10), (14, 2, 22, 10), (26, 2, 34, 10)]  # 8x8 block, +12 px per frame
STILL = [(30, 20, 40, 30)] * 3


def test_object_facts_of_a_block_moving_right(tmp_path):
    facts = track_facts(video_sample(tmp_path, "mevis", "v", [RIGHT, STILL], ["block", "box"]))
    block, box = facts.objects
    assert block.frames == (0, 1, 2) and block.intervals == ((0, 2),)
    assert block.centroids == ((6.0, 6.0), (18.0, 6.0), (30.0, 6.0))
    assert block.areas == (64.0, 64.0, 64.0)
    assert (block.direction, block.speed, block.size_change) == ("right", 24.0, "same")  # 24 px over 1 s at 2 fps
    assert (block.enters, block.leaves) == (False, False)
    assert (box.direction, box.speed, box.centroids[0]) == ("still", 0.0, (35.0, 25.0))
    (pair,) = facts.pairs
    assert (pair.a, pair.b, pair.frames) == (0, 1, (0, 1, 2))
    assert pair.relations == ("right of", "below", "below")  # offsets (29, 19), (17, 19), (5, 19)
    assert pair.distance == "approaching"  # 34.7 px -> 19.6 px apart
    assert [place(c, facts) for c in block.centroids] == ["top left", "top", "top"]  # thirds of 48 px: x=30 is still centre


def test_entering_growing_and_gaps(tmp_path):
    grow = [None, (20, 10, 24, 14), (18, 8, 26, 16), (16, 6, 28, 18)]
    sample = video_sample(tmp_path, "mevis", "g", [grow], ["ball"])
    (ball,) = track_facts(sample).objects
    assert ball.frames == (1, 2, 3) and ball.enters and not ball.leaves
    assert (ball.direction, ball.size_change, ball.areas) == ("still", "grows", (16.0, 64.0, 144.0))
    sparse = sample.regions[0].frames
    sample.regions[0] = Region(label="ball", prompt="mask", frames=[sparse[0], sparse[2]])  # keyframes 1 and 3
    (ball,) = track_facts(sample).objects
    assert ball.intervals == ((1, 1), (3, 3))
    assert (ball.enters, ball.leaves) == (False, False)  # sparse keyframes say nothing about entering


def test_box_prompts_and_diagonal_motion(tmp_path):
    sample = video_sample(tmp_path, "mevis", "b", [RIGHT], ["car"])
    sample.regions[0] = Region(label="car", prompt="box", frames=[RegionFrame(frame=0, box=(40, 2, 48, 10)), RegionFrame(frame=2, box=(4, 22, 12, 30))])
    (car,) = track_facts(sample).objects
    assert car.centroids == ((44.0, 6.0), (8.0, 26.0))
    assert car.direction == "down-left"
    assert "<obj0> is visible on frames 0-0, 2-2; it starts at the top right and ends at the bottom left" in track_facts(sample).describe()


def test_one_frame_says_nothing_about_motion(tmp_path):
    sample = video_sample(tmp_path, "videorefer", "k", [[None, (20, 10, 28, 18), None]], ["cat"])
    facts = track_facts(sample)
    (cat,) = facts.objects
    assert (cat.frames, cat.direction, cat.enters, cat.leaves) == ((1,), "unknown", False, False)
    assert templates.qa_rounds(facts) == [("basic", "Where is <obj0> when it first appears?", "In the center of the frame, on frame 1.")]
    assert templates.multiple_choice(facts, seed="x") is None
    assert templates.motion(cat, facts) == "<obj0> is seen only on frame 1, in the center of the frame."
