"""The fake LLM judge (a local OpenAI-compatible server) with its key in the environment."""

from __future__ import annotations

import pytest

from tests.pipelines.evaluate.fake_judge import KEY, KEY_ENV, judge_server


@pytest.fixture
def judge(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    server = judge_server()
    yield server
    server.close()
