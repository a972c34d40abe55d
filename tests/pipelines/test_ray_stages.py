"""videoqa and segment on Ray give the same bytes as in this process: heuristic and openai
backends (all LLM calls through one endpoint actor: the RPM limit holds across workers, reruns
send nothing, the key stays out of every file), the SAM 2 Segmentor actor, segment actors."""

from __future__ import annotations

import json
import shutil

import pytest

from pipelines import workspace
from pipelines.cli import main
from schemas import Region
from schemas.arrow import read_parquet
from tests.pipelines.fake_openai import FakeOpenAI
from tests.pipelines.videoqa_inputs import ANSWERS, CONFIG, RIGHT, STILL, vg_sample, video_sample, write_source

KEY = "sk-ray-SECRET-31"
KEY_ENV = "RAY_TEST_LLM_KEY"


@pytest.fixture(scope="module")
def ray_with_key(request):
    """Ray started with the key in its environment: the endpoint actor reads it there, as a user's would."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, KEY)
        yield request.getfixturevalue("ray_local")


def _videos(base, labels: list[str]):
    """A workspace of one-object videos; a label "keyframe" makes a region annotated on frame 0 only."""
    root, out = base / "mevis", base / "out"
    samples = []
    for i, label in enumerate(labels):
        sample = video_sample(root, "mevis", f"v{i}", [RIGHT, STILL] if label == "pair" else [RIGHT], [label] * (2 if label == "pair" else 1))
        if label == "keyframe":
            sample.regions[0] = Region(label=label, prompt="mask", mask_origin="annotation", frames=sample.regions[0].frames[:1])
        samples.append(sample)
    write_source(out, root, "mevis", samples)
    return out


def _outputs(out, target: str = "videoqa_mevis") -> tuple[bytes, bytes]:
    return workspace.part_path(out, target, 0).read_bytes(), (out / "rejects" / f"{target}.jsonl").read_bytes()


def test_heuristic_videoqa_with_sam2_segmentor_on_ray_matches_in_process(tmp_path, ray_with_key):
    args = ["--source", "mevis", "--branch", "qa", "--branch", "description",
            "--sam2-config", CONFIG, "--sam2-checkpoint", "none", "--sam2-random-weights-for-tests", "--sam2-image-size", "256",
            "--device", "cpu"]
    here, there = _videos(tmp_path / "a", ["pair", "keyframe"]), _videos(tmp_path / "b", ["pair", "keyframe"])
    assert main(["videoqa", "--out", str(here), *args]) == 0
    assert main(["videoqa", "--out", str(there), "--workers", "2", *args]) == 0
    assert _outputs(there) == _outputs(here)
    detailed = next(s for s in read_parquet(workspace.part_path(there, "videoqa_mevis", 0)) if s.id == "videoqa_mevis/train/v1_detailed")
    region = detailed.regions[0]  # the Segmentor actor propagated the keyframe through the 3 frames
    assert (region.mask_origin, [rf.frame for rf in region.frames]) == ("sam2_random", [0, 1, 2])
    stats = json.loads((there / "stats" / "videoqa_mevis.json").read_text())
    assert (stats["read"], stats["written"], stats["samples"]) == (4, 4, 7)  # keyframe-only: no MC sample


def _openai(out, server, *extra) -> list[str]:
    return ["videoqa", "--out", str(out), "--source", "mevis", "--backend", "openai", "--base-url", server.url,
            "--model", "fake-vl", "--api-key-env", KEY_ENV, "--max-retries", "2", "--backoff", "0.01",
            "--timeout", "2", "--frames", "2", *extra]


def test_openai_videoqa_on_ray_shares_one_endpoint(tmp_path, ray_with_key):
    labels = ["block", "doomed", "cube", "brick"]
    here, there = _videos(tmp_path / "a", labels), _videos(tmp_path / "b", labels)
    doomed = lambda body: "doomed" in json.dumps(body)  # noqa: E731
    local = FakeOpenAI(ANSWERS, fail_if=doomed)
    try:
        assert main(_openai(here, local, "--concurrency", "4")) == 0
    finally:
        local.close()
    server = FakeOpenAI(ANSWERS, script=["429", "malformed", "500"], fail_if=doomed)
    try:
        assert main(_openai(there, server, "--workers", "2", "--rpm", "300", "--concurrency", "2")) == 0
        sent = len(server.requests)
        assert main(_openai(there, server, "--workers", "2")) == 0  # rerun: the journal answers, nothing is sent
        assert len(server.requests) == sent
        (there / "videoqa" / "mevis" / "journal.jsonl").unlink()  # without the journal, the actor's cache answers
        assert main(_openai(there, server, "--workers", "2")) == 0  # all but the doomed sample's 3 attempts
        assert len(server.requests) == sent + 3
    finally:
        server.close()
    assert _outputs(there) == _outputs(here)
    rejects = [json.loads(line) for line in (there / "rejects" / "videoqa_mevis.jsonl").read_text().splitlines()]
    assert [(r["reason"], r["locator"]) for r in rejects] == [("llm_retries_exhausted", "mevis/train/v1")]
    failed = [json.loads(line) for line in (there / "videoqa" / "failed_requests.jsonl").read_text().splitlines()]
    assert [(f["agent"], f["reason"]) for f in failed] == [("annotator", "retries_exhausted")] * 2  # one file, both runs
    first = sorted(t for t, _, _ in server.requests[:sent])
    # 300 rpm = 5 per second over all workers: any 1 s window holds at most 6 (one limiter, in the endpoint actor)
    # 3 annotator requests + 1 refiner_qa request (the three QA prompts are equal: 2 cache hits) + the doomed
    # sample's 3 attempts + one retry each for the 429 and the 500 + one repair of the malformed reply
    assert sent == 10 and max(sum(1 for u in first if t <= u < t + 1.0) for t in first) <= 6, first
    assert first[-1] - first[0] >= (sent - 1) * 0.2 * 0.9, first
    report = json.loads((there / "videoqa" / "stats.json").read_text())
    assert report["response_format"] == "json_schema" and report["agents"]["annotator"]["cache_hits"] == 3
    assert all(auth == f"Bearer {KEY}" for _, _, auth in server.requests)
    for path in there.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_missing_key_in_the_endpoint_actor_is_a_clear_error(tmp_path, ray_with_key, capsys):
    out = _videos(tmp_path, ["block"])
    server = FakeOpenAI(ANSWERS)
    try:
        args = _openai(out, server, "--workers", "1")
        args[args.index(KEY_ENV)] = "RAY_TEST_UNSET_KEY"
        assert main(args) == 2
    finally:
        server.close()
    assert "RAY_TEST_UNSET_KEY is not set" in capsys.readouterr().err and not server.requests


def test_segment_on_ray_actors_matches_in_process(tmp_path, ray_with_key):
    root, out = tmp_path / "vg", tmp_path / "out"
    write_source(out, root, "vg", [vg_sample(root, 1, "box"), vg_sample(root, 2, "point")])
    write_source(out, root, "vg", [vg_sample(root, 3, "box")], part=1)
    args = ["segment", "--source", "vg", "--out", str(out), "--sam2-config", CONFIG, "--sam2-checkpoint", "none",
            "--sam2-random-weights-for-tests", "--device", "cpu", "--sam2-image-size", "256"]
    assert main(args) == 0
    before = [_outputs(out, "vg_sam2"), workspace.part_path(out, "vg_sam2", 1).read_bytes()]
    shutil.rmtree(workspace.unified_dir(out, "vg_sam2"))
    assert main([*args, "--workers", "2"]) == 0
    assert [_outputs(out, "vg_sam2"), workspace.part_path(out, "vg_sam2", 1).read_bytes()] == before
    stats = json.loads((out / "stats" / "vg_sam2.json").read_text())
    assert (stats["read"], stats["written"]) == (3, 3)
