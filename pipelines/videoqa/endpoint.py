"""The LLM endpoint of a Ray run: one threaded Ray actor owning the run's only `LLMClient`.

Every Ray worker of `pixelrefer videoqa --workers K` asks its agents through this actor, so the
endpoint sees one rate limiter, one request cache, one failed_requests.jsonl and one stats
table, and at most `--concurrency` requests in flight (the actor's max_concurrency and the
client's own bound). That is "bounded concurrency per endpoint".

The API key is read from the environment inside the actor (by `LLMClient`): it is never a task
argument or a Ray object. So it must be set where the actor runs: for a local Ray, in the shell
that runs `pixelrefer`; on a cluster, in the environment of the driver's node before `ray start`.
The actor is pinned to the driver's node, where OUT/videoqa (cache, failure log) is written.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from pipelines.llm import LLMClient, LLMConfig, LLMFailure
from pipelines.videoqa.agents import AGENTS, Agent, Scene
from pipelines.videoqa.branches import LLMBackend


class _Endpoint:
    """The actor: an LLMBackend whose failures come back as values (they are data, not crashes)."""

    def __init__(self, config: LLMConfig, workdir: Path):
        self.backend, self.error = None, None
        try:
            self.backend = LLMBackend(LLMClient(config, workdir))
        except ValueError as err:  # the key is missing here: reported by `error`, not as a dead actor
            self.error = str(err)

    def startup_error(self) -> str | None:
        return self.error

    def ask(self, agent: str, scene: Scene, locator: str) -> tuple[BaseModel | None, tuple[str, str] | None]:
        try:
            return self.backend.ask(AGENTS[agent], scene, locator), None
        except LLMFailure as err:
            return None, (err.reason, err.detail)

    def report(self) -> dict:
        return self.backend.report()

    def close(self) -> None:
        self.backend.close()


class EndpointBackend:
    """The backend Ray workers hold: a handle to the endpoint actor (no client, no key)."""

    name, needs_images = LLMBackend.name, LLMBackend.needs_images

    def __init__(self, config: LLMConfig, workdir: Path):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        actor = ray.remote(num_cpus=0, max_concurrency=config.concurrency)(_Endpoint)
        self._actor = actor.options(scheduling_strategy=here).remote(config, workdir)
        self.model = config.model
        error = ray.get(self._actor.startup_error.remote())
        if error:
            raise ValueError(f"{error} (in the Ray actor of the LLM endpoint: set it before `ray start` on a cluster)")

    def ask(self, agent: Agent, scene: Scene, locator: str) -> BaseModel:
        import ray

        answer, failure = ray.get(self._actor.ask.remote(agent.NAME, scene, locator))
        if failure is not None:
            raise LLMFailure(*failure)
        return answer

    def report(self) -> dict:
        import ray

        return ray.get(self._actor.report.remote())

    def close(self) -> None:
        import ray

        ray.get(self._actor.close.remote())
        ray.kill(self._actor)
