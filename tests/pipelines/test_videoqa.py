"""The videoqa engine end to end: heuristic QA from known trajectories (exact text), the openai
backend against a fault-injecting local server (nothing lost, reruns free, key never written),
resumability and byte-identical reruns, the dry run."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from pipelines import workspace
from pipelines.cli import main
from pipelines.videoqa.frames import frame_images
from sources.media import load_frames
from schemas import Media, validate
from schemas.arrow import read_parquet
from tests.pipelines.fake_openai import FakeOpenAI
from tests.pipelines.videoqa_inputs import ANSWERS, CONFIG, RIGHT, STILL, video_sample, write_mp4, write_source

KEY = "sk-videoqa-SECRET-7"


@pytest.fixture
def workspace_two_objects(tmp_path):
    root, out = tmp_path / "mevis", tmp_path / "out"
    write_source(out, root, "mevis", [video_sample(root, "mevis", "v1", [RIGHT, STILL], ["block", "box"])])
    return out


def _texts(sample) -> list[tuple[str, str]]:
    return [(t.role, t.text) for t in sample.conversation]


def test_heuristic_backend_writes_exact_qa_from_trajectories(workspace_two_objects, capsys):
    out = workspace_two_objects
    assert main(["videoqa", "--out", str(out), "--source", "mevis", "--branch", "qa", "--branch", "description"]) == 0
    assert str(workspace.unified_dir(out, "videoqa_mevis")) in capsys.readouterr().out
    qa, mc, detailed, short = read_parquet(workspace.part_path(out, "videoqa_mevis", 0))
    assert [s.id for s in (qa, mc, detailed, short)] == [
        "videoqa_mevis/train/v1_qa", "videoqa_mevis/train/v1_mc", "videoqa_mevis/train/v1_detailed", "videoqa_mevis/train/v1_short"]
    assert [s.task for s in (qa, mc, detailed, short)] == ["video_qa", "multiple_choice", "video_caption", "video_caption"]
    assert _texts(qa) == [
        ("user", "Where is <obj0> when it first appears?"),
        ("assistant", "In the top left of the frame, on frame 0."),
        ("user", "How does <obj0> move over the video?"),
        ("assistant", "<obj0> moves right from the top left to the top of the frame."),
        ("user", "How does <obj1> move over the video?"),
        ("assistant", "<obj1> stays in the bottom right of the frame."),
        ("user", "Where is <obj1> relative to <obj0>?"),
        ("assistant", "At first <obj1> is right of <obj0>; at the end it is below it, and they move closer together."),
        ("user", "Is <obj0> getting closer to the camera?"),
        ("assistant", "Its apparent size stays about the same (from 64 to 64 pixels), so its distance hardly changes."),
        ("user", "Where will <obj0> probably be next?"),
        ("assistant", "It will probably leave the view on the right."),  # next centroid x = 54 > 48
    ]
    assert qa.meta["qa_types"] == ["basic", "sequential", "sequential", "relationship", "reasoning", "future_prediction"]
    question, answer = mc.conversation[0].text.split("\n"), mc.conversation[1].text
    assert question[0] == "Which way does <obj0> move?" and len(question) == 6
    letter = answer[1]
    assert answer == f"({letter}) It moves right." and f"({letter}) It moves right." in question
    assert mc.meta["answer"] == letter and len(mc.regions) == 1  # the MC sample keeps only the region it names
    assert _texts(detailed)[1] == ("assistant", "<obj0> is a block. <obj0> moves right from the top left to the top of the frame.")
    assert _texts(short)[1] == ("assistant", "<obj0> moves right from the top left to the top of the frame.")
    assert detailed.meta["subject"] == "block" and detailed.meta["other_nouns"] == ["box"]
    for s in (qa, mc, detailed, short):
        validate(s)
        assert s.meta["engine"]["backend"] == "heuristic" and s.meta["engine"]["prompts"]["refiner_qa"] == "refiner-qa/1"
        assert (s.provenance.file, s.provenance.locator) == ("unified/mevis/part-00000.parquet", "mevis/train/v1")
    stats = json.loads((out / "stats" / "videoqa_mevis.json").read_text())
    assert (stats["detail"]["input_samples"], stats["read"], stats["written"], stats["rejected"], stats["samples"]) == (1, 2, 2, 0, 4)
    assert json.loads((workspace.unified_dir(out, "videoqa_mevis") / "source.json").read_text())["root"] == str(out.parent / "mevis")


def test_rerun_and_resume_are_byte_identical(workspace_two_objects):
    out = workspace_two_objects
    args = ["videoqa", "--out", str(out), "--source", "mevis"]
    assert main(args) == 0
    part = workspace.part_path(out, "videoqa_mevis", 0)
    first = part.read_bytes()
    journal = out / "videoqa" / "mevis" / "journal.jsonl"
    journal.write_text(journal.read_text() + '{"key": "torn', encoding="utf-8")  # a crash mid-line
    part.unlink()
    assert main(args) == 0
    assert part.read_bytes() == first


@pytest.fixture
def three_videos(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", KEY)
    root, out = tmp_path / "mevis", tmp_path / "out"
    samples = [video_sample(root, "mevis", f"v{i}", [RIGHT], [label]) for i, label in enumerate(["block", "doomed", "cube"])]
    write_source(out, root, "mevis", samples)
    return out


def _openai_args(out, server, *extra) -> list[str]:
    return ["videoqa", "--out", str(out), "--source", "mevis", "--backend", "openai", "--base-url", server.url,
            "--model", "fake-vl", "--api-key-env", "FAKE_KEY", "--max-retries", "2", "--backoff", "0.01",
            "--timeout", "0.5", "--concurrency", "2", "--frames", "2", *extra]


def test_openai_backend_loses_nothing_and_reruns_from_cache(three_videos):
    out = three_videos
    server = FakeOpenAI(ANSWERS, script=["429", "malformed", "500", "violating", "timeout"], fail_if=lambda b: "doomed" in json.dumps(b))
    try:
        assert main(_openai_args(out, server)) == 0
        sent = len(server.requests)
        part = workspace.part_path(out, "videoqa_mevis", 0)
        first = part.read_bytes()
        assert main(_openai_args(out, server)) == 0
        assert len(server.requests) == sent  # the rerun sends nothing
        part.unlink()
        (out / "videoqa" / "mevis" / "journal.jsonl").unlink()  # without the journal the cache answers the good
        assert main(_openai_args(out, server)) == 0  # requests; only the failed sample's 3 attempts are sent again
        assert len(server.requests) == sent + 3 and part.read_bytes() == first
    finally:
        server.close()
    samples = read_parquet(part)
    assert [s.id for s in samples] == ["videoqa_mevis/train/v0_qa", "videoqa_mevis/train/v0_mc",
                                       "videoqa_mevis/train/v2_qa", "videoqa_mevis/train/v2_mc"]
    assert _texts(samples[1])[1] == ("assistant", "(B) right")
    assert samples[0].meta["engine"]["model"] == "fake-vl"
    rejects = [json.loads(line) for line in (out / "rejects" / "videoqa_mevis.jsonl").read_text().splitlines()]
    assert [(r["reason"], r["locator"]) for r in rejects] == [("llm_retries_exhausted", "mevis/train/v1")]
    failed = [json.loads(line) for line in (out / "videoqa" / "failed_requests.jsonl").read_text().splitlines()]
    # append-only across runs: the first run and the journal-less third run each gave up once
    assert [(f["agent"], f["locator"], f["reason"]) for f in failed] == [("annotator", "mevis/train/v1", "retries_exhausted")] * 2
    stats = json.loads((out / "stats" / "videoqa_mevis.json").read_text())
    assert (stats["detail"]["input_samples"], stats["read"], stats["written"], stats["rejected"], stats["samples"]) == (3, 3, 2, 1, 4)
    images = [p for _, body, _ in server.requests for m in body["messages"] if isinstance(m["content"], list) for p in m["content"] if p["type"] == "image_url"]
    assert images and all(p["image_url"]["url"].startswith("data:image/png;base64,") for p in images)
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_reviewer_no_is_a_counted_reject(three_videos):
    out = three_videos
    server = FakeOpenAI(ANSWERS, fail_if=lambda b: "doomed" in json.dumps(b))
    try:
        assert main(_openai_args(out, server, "--branch", "description")) == 0
    finally:
        server.close()
    rejects = [json.loads(line) for line in (out / "rejects" / "videoqa_mevis.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejects] == ["reviewer_rejected", "llm_retries_exhausted", "reviewer_rejected"]
    assert rejects[0]["detail"] == "the mask covers the background"
    agents = json.loads((out / "videoqa" / "stats.json").read_text())["agents"]
    assert sorted(agents) == ["analyzer", "annotator", "reviewer"]
    # the three captions are equal: one request, two cache hits (identical concurrent requests wait for the first)
    assert (agents["analyzer"]["requests"], agents["analyzer"]["cache_hits"], agents["analyzer"]["prompt_tokens"]) == (1, 2, 100)


def test_dry_run_renders_prompts_and_sends_nothing(three_videos, capsys):
    out = three_videos
    assert main(["videoqa", "--out", str(out), "--source", "mevis", "--backend", "openai", "--model", "m", "--dry-run", "2"]) == 0
    rows = [json.loads(line) for line in (out / "videoqa" / "dry_run.jsonl").read_text().splitlines()]
    assert [(r["id"], r["agent"]) for r in rows] == [
        ("mevis/train/v0", "annotator"), ("mevis/train/v0", "refiner_qa"), ("mevis/train/v1", "annotator"), ("mevis/train/v1", "refiner_qa")]
    image = rows[0]["messages"][1]["content"][1]["image_url"]["url"]
    assert image.startswith("sha256:")  # digests, not pixels
    assert "nothing was sent" in capsys.readouterr().out
    assert not (out / "unified" / "videoqa_mevis").exists()


def test_frames_of_a_video_file_are_decoded_and_highlighted(tmp_path):
    root = tmp_path / "videorefer"
    write_mp4(root / "videos" / "clip.mp4", RIGHT)
    sample = video_sample(tmp_path / "unused", "videorefer", "clip", [RIGHT], ["block"])
    sample.media = Media(kind="video", path="videos/clip.mp4", num_frames=3, fps=2.0, width=48, height=32)
    frames = load_frames(sample, root, [2, 0])
    assert sorted(frames) == [0, 2] and frames[2].shape == (32, 48, 3)
    red = frames[2][6, 30].astype(int)  # centre of the block on frame 2 (lossy codec: close, not equal)
    assert abs(red - (220, 40, 40)).max() < 40
    assert frames[0][6, 30].astype(int)[0] < 180  # not red there on frame 0: it is the right frame
    pngs = frame_images(sample, root, 2)
    assert [Image.open(io.BytesIO(p)).size for p in pngs] == [(48, 32), (48, 32)]
    with pytest.raises(FileNotFoundError, match="has no frame 7"):
        load_frames(sample, root, [7])


def test_bad_segmentor_arguments_stop_before_any_work(three_videos, capsys):
    out = three_videos
    base = ["videoqa", "--out", str(out), "--source", "mevis", "--branch", "description"]
    assert main([*base, "--sam2-config", CONFIG, "--sam2-checkpoint", str(out / "nope.pt")]) == 2
    assert f"checkpoint {out / 'nope.pt'} not found: pass the path of a SAM 2 .pt file" in capsys.readouterr().err
    assert main([*base, "--sam2-config", "nope.yaml", "--sam2-checkpoint", "none", "--sam2-random-weights-for-tests"]) == 2
    assert "no sam2 config 'nope.yaml': name one inside the sam2 package" in capsys.readouterr().err
    assert not (out / "videoqa").exists()
