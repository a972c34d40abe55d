"""LLM client against a local fault-injecting OpenAI-compatible server: retries, repairs,
failures on file, cache reruns, the RPM/TPM limits and the key never written."""

from __future__ import annotations

import json
import threading

import pytest

from pipelines.llm import LLMClient, LLMConfig, LLMFailure
from pipelines.llm.limiter import RateLimiter
from pipelines.llm.messages import user
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


def test_rpm_limit_holds_on_the_server_side(tmp_path, key_env):
    server = FakeOpenAI(ANSWERS)
    client = _client(server, tmp_path, rpm=300, concurrency=4)  # 5 per second: a "minute" scaled to 1 s
    try:
        threads = [threading.Thread(target=client.complete, args=("refiner", [user(f"r{i}")], Captions, "t/1", f"s{i}")) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        client.close()
        server.close()
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
