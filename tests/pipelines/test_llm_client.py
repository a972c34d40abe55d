"""LLM client against a local fault-injecting OpenAI-compatible server: retries, repairs,
failures on file, cache reruns, the RPM/TPM limits (image tokens included), the response_format
fall-back and the key never written."""

from __future__ import annotations

import base64
import io
import json
import threading

import pytest
from PIL import Image

from pipelines.llm import LLMClient, LLMConfig, LLMFailure
from pipelines.llm.limiter import RateLimiter
from pipelines.llm.messages import system, user
from pipelines.llm.tokens import estimate_tokens
from pipelines.videoqa.agents import Captions
from tests.pipelines.fake_openai import FakeOpenAI

KEY = "sk-test-NEVER-WRITE-ME-42"
ANSWERS = {"Captions": {"detailed": "<obj0> is a red block sliding right.", "short": "<obj0> slides right."}}


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", KEY)


def _client(server, tmp_path, sleeps=None, **changes) -> LLMClient:
    cfg = LLMConfig(base_url=server.url, model="fake", api_key_env="TEST_LLM_KEY", timeout_s=0.3, backoff_s=0.01, **changes)
    return LLMClient(cfg, tmp_path, sleep=(sleeps.append if sleeps is not None else lambda s: None))


def _assert_key_never_written(folder) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_faults_are_retried_and_invalid_replies_repaired(tmp_path, key_env):
    server = FakeOpenAI(ANSWERS, script=["429", "500", "timeout", "garbled", "malformed", "no_choices"], retry_after="2")
    sleeps: list[float] = []
    client = _client(server, tmp_path, sleeps)
    try:
        answer = client.complete("refiner", [user("caption <obj0>")], Captions, "t/1", locator="s1")
    finally:
        client.close()
        server.close()
    assert answer == Captions(**ANSWERS["Captions"])
    assert len(server.requests) == 7  # 4 transport retries, 2 repair turns, 1 good reply
    assert sleeps[0] == 2.0  # Retry-After honoured
    assert 0.01 <= sleeps[1] <= 0.02 and 0.02 <= sleeps[2] <= 0.04 and 0.04 <= sleeps[3] <= 0.08  # backoff x2, jitter
    repair = server.requests[5][1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": '{"objects": [oops'}
    assert "could not be used" in repair[-1]["content"]
    assert "the reply is empty" in server.requests[6][1]["messages"][-1]["content"]  # no choices = no answer
    assert server.requests[0][1]["response_format"]["json_schema"]["name"] == "Captions"
    assert all(auth == f"Bearer {KEY}" for _, _, auth in server.requests)
    stats = client.stats_dict()["refiner"]
    assert (stats["requests"], stats["retries"], stats["repairs"], stats["failures"]) == (7, 4, 2, 0)
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == (200, 40)  # the two replies with usage
    assert not (tmp_path / "failed_requests.jsonl").exists()
    _assert_key_never_written(tmp_path)


@pytest.mark.parametrize(
    ("script", "sent", "reason", "detail"),
    [
        (["500"] * 3, 3, "retries_exhausted", "InternalServerError"),
        (["empty"] * 3, 3, "invalid_output", "the reply is empty"),
        (["violating"] * 3, 3, "invalid_output", "detailed: Field required"),
        (["400"], 1, "http_400", "boom 400"),  # a client error is not retried
    ],
)
def test_exhausted_requests_go_to_failed_requests(tmp_path, key_env, script, sent, reason, detail):
    server = FakeOpenAI(ANSWERS, script=script)
    client = _client(server, tmp_path, max_retries=2, max_repairs=2, usd_per_mtok_in=1.0)
    try:
        with pytest.raises(LLMFailure) as failure:
            client.complete("refiner", [user("x")], Captions, "t/1", locator="mevis/train/v9")
    finally:
        client.close()
        server.close()
    assert failure.value.reason == reason and len(server.requests) == sent
    (row,) = [json.loads(line) for line in (tmp_path / "failed_requests.jsonl").read_text().splitlines()]
    assert (row["agent"], row["locator"], row["reason"]) == ("refiner", "mevis/train/v9", reason)
    assert detail in row["detail"]
    assert client.stats_dict()["refiner"]["failures"] == 1
    _assert_key_never_written(tmp_path)


def test_rerun_is_answered_from_the_cache(tmp_path, key_env):
    server = FakeOpenAI(ANSWERS)
    try:
        for run in range(2):
            client = _client(server, tmp_path)
            answers = [client.complete("refiner", [user(f"q{i}")], Captions, "t/1", locator=f"s{i}") for i in range(3)]
            stats = client.stats_dict()["refiner"]
            client.close()
            assert answers == [Captions(**ANSWERS["Captions"])] * 3
            assert (stats["requests"], stats["cache_hits"]) == ((3, 0) if run == 0 else (0, 3))
        assert len(server.requests) == 3
        client = _client(server, tmp_path)  # a new template version is a new request
        client.complete("refiner", [user("q0")], Captions, "t/2", locator="s0")
        client.close()
        assert len(server.requests) == 4
    finally:
        server.close()
    _assert_key_never_written(tmp_path)


def _complete_at_once(server, tmp_path, count: int, **changes) -> LLMClient:
    """`count` different requests from as many threads at once; returns the (closed) client."""
    client = _client(server, tmp_path, **changes)
    try:
        threads = [threading.Thread(target=client.complete, args=("refiner", [user(f"r{i}")], Captions, "t/1", f"s{i}")) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        client.close()
        server.close()
    return client


def test_rpm_limit_holds_on_the_server_side(tmp_path, key_env):
    server = FakeOpenAI(ANSWERS)
    _complete_at_once(server, tmp_path, 8, rpm=300, concurrency=4)  # 5 per second: a "minute" scaled to 1 s
    times = sorted(t for t, _, _ in server.requests)
    assert len(times) == 8
    # Any 1 s window holds at most 300/60 + 1 requests (without the limiter all 8 arrive within
    # milliseconds); arrival times carry network/thread jitter, so this is the robust form.
    assert max(sum(1 for u in times if t <= u < t + 1.0) for t in times) <= 6, times
    assert times[-1] - times[0] >= 7 * 0.2 * 0.9, times


def test_tpm_bucket_waits_for_refill():
    now = [0.0]
    waits: list[float] = []
    limiter = RateLimiter(rpm=None, tpm=600, clock=lambda: now[0], sleep=waits.append)  # 10 tokens/s
    limiter.acquire(500)
    limiter.acquire(200)  # 100 left, 100 missing -> 10 s
    limiter.settle(estimated=200, actual=100)  # 100 tokens returned
    now[0] = 10.0
    limiter.acquire(600)  # bucket: -100 + 100 (returned) + 100 (refill) = 100 -> 500 missing -> 50 s
    assert waits == [10.0, 50.0]


def test_missing_key_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ValueError, match="NO_SUCH_KEY_VAR is not set"):
        LLMClient(LLMConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="NO_SUCH_KEY_VAR"), tmp_path)


@pytest.mark.parametrize(
    ("refused", "modes"),
    [
        (("json_schema",), {"json_schema": 1, "json_object": 2}),
        (("json_schema", "json_object"), {"json_schema": 1, "json_object": 1, "none": 2}),
    ],
)
def test_a_refused_response_format_falls_back_once(tmp_path, key_env, refused, modes):
    server = FakeOpenAI(ANSWERS, refuse_formats=refused)
    messages = [[system("You write captions."), user("q0")], [user("q1")]]
    try:
        client = _client(server, tmp_path)
        answers = [client.complete("refiner", m, Captions, "t/1", locator=f"s{i}") for i, m in enumerate(messages)]
        stats, final = client.stats_dict()["refiner"], client.format
        client.close()
        rerun = _client(server, tmp_path)  # a fresh client starts at json_schema again, but the cache answers first
        rerun.complete("refiner", messages[0], Captions, "t/1", locator="s0")
        rerun.close()
    finally:
        server.close()
    assert answers == [Captions(**ANSWERS["Captions"])] * 2
    assert final == list(modes)[-1] and stats["formats"] == modes
    assert (stats["requests"], stats["retries"], stats["failures"]) == (sum(modes.values()), 0, 0)
    assert len(server.requests) == sum(modes.values())  # the rerun sent nothing
    note = "Reply with only a JSON object that matches this JSON schema:\n" + json.dumps(Captions.model_json_schema(), sort_keys=True)
    (_, fell_back, _), (_, later, _) = server.requests[len(refused)], server.requests[-1]
    assert fell_back["messages"] == [{"role": "system", "content": "You write captions.\n\n" + note}, {"role": "user", "content": "q0"}]
    assert later["messages"] == [{"role": "system", "content": note}, {"role": "user", "content": "q1"}]
    expected = {"json_object": {"type": "json_object"}, "none": None}[final]
    assert [body.get("response_format") for _, body, _ in server.requests[len(refused):]] == [expected] * 2
    assert not (tmp_path / "failed_requests.jsonl").exists()


def test_concurrent_refusals_fall_back_one_step_only(tmp_path, key_env):
    client = _complete_at_once(FakeOpenAI(ANSWERS, refuse_formats=("json_schema",)), tmp_path, 4, concurrency=4)
    formats = client.stats_dict()["refiner"]["formats"]
    # several threads may see the 400 of json_schema; each must move to json_object, not past it
    assert client.format == "json_object" and formats["json_object"] == 4 and "none" not in formats


def test_a_server_refusing_every_format_fails_the_request(tmp_path, key_env):
    server = FakeOpenAI(ANSWERS, refuse_formats=("json_schema", "json_object", "none"))
    client = _client(server, tmp_path)
    try:
        with pytest.raises(LLMFailure, match="http_400"):
            client.complete("refiner", [user("x")], Captions, "t/1", locator="s0")
    finally:
        client.close()
        server.close()
    assert len(server.requests) == 3
    (row,) = [json.loads(line) for line in (tmp_path / "failed_requests.jsonl").read_text().splitlines()]
    assert row["reason"] == "http_400" and "response_format type none is not supported" in row["detail"]


def _image(width: int, height: int, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def test_token_estimate_counts_images_by_pixel_size():
    jpeg = "data:image/jpeg;base64," + base64.b64encode(_image(100, 60, "JPEG")).decode()
    messages = [
        user("hi", [_image(448, 252, "PNG"), _image(30, 20, "PNG")]),
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": jpeg}}]},
    ]
    text = (
        '[{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": ""}}, '
        '{"type": "image_url", "image_url": {"url": ""}}]}, {"role": "user", "content": [{"type": "image_url", "image_url": {"url": ""}}]}]'
    )
    # Qwen2-VL rule: 448x252 -> 16*9 patches, 30x20 -> 2*1, 100x60 -> 4*3; +2 tokens per image
    assert estimate_tokens(messages, 50, patch_px=28, overhead=2) == len(text) // 4 + (144 + 2) + (2 + 2) + (12 + 2) + 50
    assert estimate_tokens(messages, 50, patch_px=14, overhead=0) == len(text) // 4 + 32 * 18 + 3 * 2 + 8 * 5 + 50
    assert estimate_tokens([user("hi")], 0, 28, 2) == len('[{"role": "user", "content": "hi"}]') // 4


class _Debits:
    """Stands in for the rate limiter and records what each request reserves."""

    def __init__(self):
        self.acquired: list[int] = []

    def acquire(self, tokens: int) -> None:
        self.acquired.append(tokens)

    def settle(self, estimated: int, actual: int) -> None:
        pass


def test_the_client_reserves_the_image_aware_estimate(tmp_path, key_env):
    server = FakeOpenAI(ANSWERS)
    client = _client(server, tmp_path, tpm=10**6, max_tokens=50)
    client._limiter = debits = _Debits()
    messages = [user("caption <obj0>", [_image(448, 252, "PNG")])]
    try:
        client.complete("refiner", messages, Captions, "t/1", locator="s0")
    finally:
        client.close()
        server.close()
    sent = server.requests[0][1]["messages"]
    assert debits.acquired == [estimate_tokens(sent, 50, patch_px=28, overhead=2)]
    assert debits.acquired[0] >= 144 + 2 + 50  # the 448x252 image's 16 x 9 patches are in it
