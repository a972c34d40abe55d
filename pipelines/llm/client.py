"""`LLMClient`: one OpenAI-compatible endpoint (vLLM, SGLang, Ollama, OpenAI) behind a cache,
a rate limiter, bounded concurrency, retries and a failure log.

A call asks for a pydantic model. The request carries a JSON-schema `response_format`; a server
that refuses it (HTTP 400/422 naming response_format, json_schema or json_object) makes this
client fall back, once for all threads, to `{"type": "json_object"}` and then to no
response_format, the schema then being stated in the system prompt. Since servers may also
ignore the format, the reply is always parsed and validated, and an invalid one (malformed
JSON, schema violation, empty text, a caller check such as "placeholders name existing
regions") gets a repair turn that quotes the error. Transport errors (429, 5xx, timeouts,
connection errors) are retried with exponential backoff and jitter, honouring Retry-After. What
still fails is raised as `LLMFailure` and appended to `<dir>/failed_requests.jsonl` with its
reason; an empty string is never an answer. The API key is read from the environment and is
never written: not in the cache key or value, the stats, or the failure log.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import openai
from pydantic import BaseModel, Field, ValidationError

from pipelines.llm.cache import RequestCache, request_key
from pipelines.llm.limiter import RateLimiter
from pipelines.llm.tokens import estimate_tokens

T = TypeVar("T", bound=BaseModel)

REPAIR_PROMPT = (
    "Your previous reply could not be used: {error}\n"
    "Reply again with only a JSON object that matches the schema, with no other text."
)
SCHEMA_PROMPT = "Reply with only a JSON object that matches this JSON schema:\n{schema}"

# response_format modes, most to least strict; a server that rejects one gets the next.
RESPONSE_FORMATS: dict[str, Callable[[type[BaseModel]], dict | None]] = {
    "json_schema": lambda schema: {
        "type": "json_schema",
        "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()},
    },
    "json_object": lambda schema: {"type": "json_object"},
    "none": lambda schema: None,
}
_FORMAT_REFUSED = re.compile(r"response_format|json_schema|json_object", re.IGNORECASE)


class LLMConfig(BaseModel):
    """How to reach one endpoint and how hard to push it."""

    base_url: str = Field(description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1.")
    model: str = Field(description="Model name the server knows.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key.")
    rpm: float | None = Field(None, gt=0, description="Requests per minute (None: unlimited).")
    tpm: int | None = Field(None, gt=0, description="Tokens per minute, prompt + completion (None: unlimited).")
    concurrency: int = Field(4, ge=1, description="Requests in flight at once.")
    max_retries: int = Field(5, ge=0, description="Retries of one request on 429/5xx/timeout/connection errors.")
    max_repairs: int = Field(2, ge=0, description="Repair turns after an invalid reply.")
    timeout_s: float = Field(60.0, gt=0, description="Seconds before one request times out.")
    backoff_s: float = Field(1.0, ge=0, description="First retry delay; doubles per attempt, with jitter.")
    backoff_max_s: float = Field(60.0, ge=0, description="Longest retry delay (and longest Retry-After honoured).")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature.")
    max_tokens: int = Field(1024, ge=1, description="Completion token limit per request.")
    usd_per_mtok_in: float = Field(0.0, ge=0, description="Price of a million prompt tokens, for cost accounting.")
    usd_per_mtok_out: float = Field(0.0, ge=0, description="Price of a million completion tokens.")
    image_patch_px: int = Field(28, ge=1, description="TPM estimate: one image token per patch x patch pixels (Qwen2-VL: 28).")
    image_overhead_tokens: int = Field(2, ge=0, description="TPM estimate: tokens added per image (Qwen2-VL: vision start/end).")


class LLMFailure(Exception):
    """A request that produced no usable answer after every retry and repair."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class AgentStats:
    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    repairs: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    formats: dict[str, int] = field(default_factory=dict)  # requests sent per response_format mode


def _retry_after(err: openai.APIStatusError) -> float | None:
    value = err.response.headers.get("retry-after") if err.response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


def _retryable(err: Exception) -> bool:
    if isinstance(err, (openai.APITimeoutError, openai.APIConnectionError, json.JSONDecodeError)):
        return True
    return isinstance(err, openai.APIStatusError) and (err.status_code in (408, 409, 429) or err.status_code >= 500)


def _format_refused(err: Exception) -> bool:
    """A 400/422 that names the response format: the server does not support that mode."""
    return isinstance(err, openai.APIStatusError) and err.status_code in (400, 422) and bool(_FORMAT_REFUSED.search(str(err)))


def schema_stated(convo: list[dict], schema: type[BaseModel]) -> list[dict]:
    """`convo` with the JSON schema appended to its system turn (or as a new one), for servers
    that receive no json_schema response_format."""
    note = SCHEMA_PROMPT.format(schema=json.dumps(schema.model_json_schema(), sort_keys=True))
    first = convo[0] if convo else None
    if first is not None and first["role"] == "system" and isinstance(first["content"], str):
        return [{**first, "content": f"{first['content']}\n\n{note}"}, *convo[1:]]
    return [{"role": "system", "content": note}, *convo]


def parse_reply(text: str, schema: type[T], check: Callable[[T], None] | None = None) -> T:
    """The reply as a `schema` instance; ValueError says why it is unusable."""
    body = text.strip()
    if body.startswith("```"):  # servers that ignore response_format like to fence their JSON
        body = body.strip("`").removeprefix("json").strip()
    if not body:
        raise ValueError("the reply is empty")
    try:
        answer = schema.model_validate_json(body)
    except ValidationError as err:
        first = err.errors()[0]
        raise ValueError(f"{'.'.join(map(str, first['loc'])) or 'reply'}: {first['msg']}") from None
    if check is not None:
        check(answer)
    return answer


class LLMClient:
    """Thread-safe: share one per endpoint; `complete` may be called from many threads."""

    def __init__(self, config: LLMConfig, workdir: Path, sleep: Callable[[float], None] = time.sleep):
        key = os.environ.get(config.api_key_env)
        if not key:
            raise ValueError(
                f"environment variable {config.api_key_env} is not set: export the API key there "
                "(any non-empty value for a local server without authentication)"
            )
        self.config = config
        self._secret = key
        self._client = openai.OpenAI(base_url=config.base_url, api_key=key, max_retries=0, timeout=config.timeout_s)
        # openai imports its resources lazily, under the import lock: do it now, so that a first
        # request's import never sits between its rate slot and its send (it would bunch sends).
        self._completions = self._client.chat.completions
        self._cache = RequestCache(workdir / "cache" / "requests.sqlite")
        self._failed_path = workdir / "failed_requests.jsonl"
        self._limiter = RateLimiter(config.rpm, config.tpm)
        self._slots = threading.Semaphore(config.concurrency)
        self._lock = threading.Lock()
        self._gates: dict[str, threading.Lock] = {}
        self._rng = random.Random(0)
        self._sleep = sleep
        self.format = next(iter(RESPONSE_FORMATS))  # the mode this endpoint accepts, as far as we know
        self.stats: dict[str, AgentStats] = {}

    def complete(
        self,
        agent: str,
        messages: list[dict],
        schema: type[T],
        template_version: str,
        locator: str,
        check: Callable[[T], None] | None = None,
    ) -> T:
        """The validated answer (from the cache when this exact request was answered before).

        The response_format mode is not part of the cache key: the key already holds the schema,
        and only answers valid against it are cached, so an answer is good in any mode (and a
        rerun after a fall-back is still answered from the cache, sending nothing).
        """
        params = {"temperature": self.config.temperature, "max_tokens": self.config.max_tokens}
        key = request_key(self.config.model, messages, schema.model_json_schema(), params, template_version)
        with self._lock:  # single flight: identical concurrent requests wait for one answer
            gate = self._gates.setdefault(key, threading.Lock())
        with gate:
            return self._complete(agent, messages, schema, key, locator, check)

    def _complete(self, agent: str, messages: list[dict], schema: type[T], key: str, locator: str,
                  check: Callable[[T], None] | None) -> T:
        stats = self._stats(agent)
        cached = self._cache.get(key)
        if cached is not None:
            with self._lock:
                stats.cache_hits += 1
            return schema.model_validate(cached["answer"])
        convo = list(messages)
        for _ in range(self.config.max_repairs + 1):
            try:
                text = self._call(agent, convo, schema)
            except LLMFailure as failure:
                raise self._fail(agent, locator, key, failure.reason, failure.detail) from None
            try:
                answer = parse_reply(text, schema, check)
            except ValueError as err:
                problem = str(err)
                with self._lock:
                    stats.repairs += 1
                convo = convo + [
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": REPAIR_PROMPT.format(error=problem)},
                ]
                continue
            self._cache.put(key, {"answer": answer.model_dump(mode="json")})
            return answer
        raise self._fail(agent, locator, key, "invalid_output", problem)

    def stats_dict(self) -> dict[str, dict]:
        with self._lock:
            return {name: asdict(s) for name, s in sorted(self.stats.items())}

    def close(self) -> None:
        self._cache.close()
        self._client.close()

    def _stats(self, agent: str) -> AgentStats:
        with self._lock:
            return self.stats.setdefault(agent, AgentStats())

    def _call(self, agent: str, convo: list[dict], schema: type[BaseModel]) -> str:
        """One request, retried on transient errors; returns the reply text (possibly invalid)."""
        cfg, stats = self.config, self._stats(agent)
        estimate = estimate_tokens(convo, cfg.max_tokens, cfg.image_patch_px, cfg.image_overhead_tokens)
        attempt = 0
        while True:
            mode = self.format
            try:
                with self._slots:  # take the rate slot only once a connection is free, so sends never bunch
                    self._limiter.acquire(estimate)
                    with self._lock:
                        stats.requests += 1
                        stats.formats[mode] = stats.formats.get(mode, 0) + 1
                    reply = self._send(convo, schema, mode)
            except (openai.APIError, json.JSONDecodeError) as err:  # the latter: a garbled response body
                if mode != "none" and _format_refused(err):
                    self._fall_back(mode)  # not a retry: the same request in a mode the server accepts
                    continue
                if not _retryable(err):
                    status = getattr(err, "status_code", None)
                    raise LLMFailure(f"http_{status}" if status else type(err).__name__, str(err)) from None
                detail = f"{type(err).__name__}: {err}"
                if attempt == cfg.max_retries:
                    raise LLMFailure("retries_exhausted", detail) from None
                with self._lock:
                    stats.retries += 1
                    jitter = 0.5 + 0.5 * self._rng.random()
                hint = _retry_after(err) if isinstance(err, openai.APIStatusError) else None
                self._sleep(min(cfg.backoff_max_s, hint if hint is not None else cfg.backoff_s * 2**attempt * jitter))
                attempt += 1
                continue
            usage = reply.usage
            used_in = (usage.prompt_tokens or 0) if usage else 0
            used_out = (usage.completion_tokens or 0) if usage else 0
            self._limiter.settle(estimate, used_in + used_out)
            with self._lock:
                stats.prompt_tokens += used_in
                stats.completion_tokens += used_out
                stats.cost_usd += (used_in * cfg.usd_per_mtok_in + used_out * cfg.usd_per_mtok_out) / 1e6
            choice = reply.choices[0] if reply.choices else None
            return (choice.message.content or "") if choice else ""

    def _send(self, convo: list[dict], schema: type[BaseModel], mode: str):
        cfg = self.config
        response_format = RESPONSE_FORMATS[mode](schema)
        return self._completions.create(
            model=cfg.model,
            messages=convo if mode == "json_schema" else schema_stated(convo, schema),
            response_format=openai.NOT_GIVEN if response_format is None else response_format,
            temperature=cfg.temperature,
            max_tokens=cfg.max_tokens,
        )

    def _fall_back(self, refused: str) -> None:
        modes = list(RESPONSE_FORMATS)
        with self._lock:
            if self.format == refused:  # a concurrent request may have moved on already
                self.format = modes[modes.index(refused) + 1]

    def _fail(self, agent: str, locator: str, key: str, reason: str, detail: str) -> LLMFailure:
        detail = detail.replace(self._secret, "***")  # a server may echo what it was sent
        row = {"agent": agent, "locator": locator, "request": key, "reason": reason, "detail": detail[:2000]}
        with self._lock:
            self.stats.setdefault(agent, AgentStats()).failures += 1
            with self._failed_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row, sort_keys=True) + "\n")
        return LLMFailure(reason, detail)
