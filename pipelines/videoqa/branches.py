"""The two branches of the engine, one input video sample -> output samples.

QA branch (video + existing masks): Annotator -> QARefiner -> a `video_qa` sample (multi-round
QA of the five VideoRefer-Bench types) and a `multiple_choice` sample.
Description branch (video + caption): Analyzer -> Segmentor -> Annotator -> Reviewer ->
CaptionRefiner -> two `video_caption` samples (detailed, short); a Reviewer "no" is a reject.

A backend answers an agent: `HeuristicBackend` from track facts, `LLMBackend` through
`pipelines.llm.LLMClient` (on Ray: `pipelines.videoqa.endpoint.EndpointBackend`, the same
through one shared actor). Every output goes through `schemas.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from pydantic import BaseModel

from pipelines import workspace
from pipelines.llm import LLMClient
from pipelines.sam2 import Segmentor, convert
from pipelines.videoqa.agents import AGENTS, Agent, Scene
from pipelines.videoqa.frames import frame_images
from pipelines.videoqa.tracks import track_facts
from schemas import Provenance, Region, Reject, Sample, Turn, placeholders, validate
from sources.roots import Roots

ENGINE_VERSION = "1"
DETAILED_PROMPT = "There is one object in the video: <obj0>. Please describe in detail the marked object in the video."
SHORT_PROMPT = "Describe <obj0> in the video in one sentence."
MC_SUFFIX = "Answer with the option's letter from the given choices directly."


class Backend(Protocol):
    name: str
    model: str | None
    needs_images: bool

    def ask(self, agent: Agent, scene: Scene, locator: str) -> BaseModel: ...


class HeuristicBackend:
    """Offline: answers from track facts only (no model, no images)."""

    name, model, needs_images = "heuristic", None, False

    def ask(self, agent: Agent, scene: Scene, locator: str) -> BaseModel:
        answer = agent.heuristic(scene)
        agent.check(scene, answer)
        return answer


class LLMBackend:
    name, needs_images = "openai", True

    def __init__(self, client: LLMClient):
        self.client = client
        self.model = client.config.model

    def ask(self, agent: Agent, scene: Scene, locator: str) -> BaseModel:
        return self.client.complete(
            agent.NAME, agent.messages(scene), agent.OUTPUT, agent.VERSION, locator, check=lambda a: agent.check(scene, a)
        )

    def report(self) -> dict:
        """What OUT/videoqa/stats.json records: per-agent accounting and the response_format mode in use."""
        return {"agents": self.client.stats_dict(), "response_format": self.client.format}

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class Context:
    """Per-run settings shared by all samples."""

    backend: Backend
    source_file: str = ""  # the input part, relative to OUT (set per sample)
    frames_per_prompt: int = 4
    sam2: Segmentor | None = None  # the Segmentor: propagates single-keyframe regions; None keeps the given masks


def caption_of(sample: Sample) -> str:
    """The sample's caption: meta['caption'] when present, else its last assistant turn."""
    if isinstance(sample.meta.get("caption"), str):
        return sample.meta["caption"]
    return next((t.text for t in reversed(sample.conversation) if t.role == "assistant"), "")


def scene_of(sample: Sample, root: Roots, frames: int) -> Scene:
    """What the agents see of a sample; `frames` highlighted frames as PNG (0: none)."""
    return Scene(
        sample_id=sample.id,
        facts=track_facts(sample),
        labels=tuple(r.label for r in sample.regions),
        frames_png=frame_images(sample, root, frames),
        caption=caption_of(sample),
    )


def _frames(ctx: Context) -> int:
    return ctx.frames_per_prompt if ctx.backend.needs_images else 0


def keep_referenced(regions: list[Region], turns: list[Turn]) -> tuple[list[Region], list[Turn]]:
    """Only the regions the turns name, renumbered in index order, with the text rewritten to match."""
    used = sorted({i for t in turns for i in placeholders.referenced(t.text)})
    new_index = {old: new for new, old in enumerate(used)}
    renumbered = [Turn(role=t.role, text=placeholders.render(t.text, lambda i: f"<obj{new_index[i]}>")) for t in turns]
    return [regions[i] for i in used], renumbered


def _output(sample: Sample, ctx: Context, suffix: str, task: str, turns: list[Turn], meta: dict) -> Sample:
    source = workspace.videoqa_source(sample.source)
    native = sample.id[len(sample.source) + 1 :]
    regions, turns = keep_referenced(list(sample.regions), turns)
    engine = {
        "version": ENGINE_VERSION,
        "backend": ctx.backend.name,
        "model": ctx.backend.model,
        "prompts": {name: agent.VERSION for name, agent in sorted(AGENTS.items())},
    }
    out = Sample(
        id=f"{source}/{native}_{suffix}", source=source, subset=sample.subset, split=sample.split, license=sample.license,
        task=task, media=sample.media, regions=regions, conversation=turns,
        meta={**meta, "from": sample.id, "engine": engine},
        provenance=Provenance(file=ctx.source_file, locator=sample.id, adapter=f"videoqa-{ctx.backend.name}", adapter_version=ENGINE_VERSION),
    )
    return validate(out)


def qa_branch(sample: Sample, root: Roots, ctx: Context) -> list[Sample]:
    scene = scene_of(sample, root, _frames(ctx))
    notes = ctx.backend.ask(AGENTS["annotator"], scene, sample.id)
    scene = replace(scene, notes=tuple(notes.objects))
    qa = ctx.backend.ask(AGENTS["refiner_qa"], scene, sample.id)
    turns = [Turn(role=role, text=text) for p in qa.qa for role, text in (("user", p.question), ("assistant", p.answer))]
    samples = [_output(sample, ctx, "qa", "video_qa", turns, {"qa_types": [p.type for p in qa.qa]})]
    mc = qa.choice
    if mc is not None:
        options = "\n".join(f"({letter}) {text}" for letter, text in zip("ABCD", mc.options))
        mc_turns = [
            Turn(role="user", text=f"{mc.question}\n{options}\n{MC_SUFFIX}"),
            Turn(role="assistant", text=f"({mc.answer}) {mc.options['ABCD'.index(mc.answer)]}"),
        ]
        samples.append(_output(sample, ctx, "mc", "multiple_choice", mc_turns, {"answer": mc.answer}))
    return samples


def description_branch(sample: Sample, root: Roots, ctx: Context) -> list[Sample]:
    scene = scene_of(sample, root, _frames(ctx))
    analysis = ctx.backend.ask(AGENTS["analyzer"], scene, sample.id)
    if ctx.sam2 is not None:  # Segmentor
        sample = convert(sample, root, ctx.sam2, sample.source)
        scene = replace(scene_of(sample, root, _frames(ctx)), caption=scene.caption)
    notes = ctx.backend.ask(AGENTS["annotator"], scene, sample.id)
    scene = replace(scene, notes=tuple(notes.objects))
    review = ctx.backend.ask(AGENTS["reviewer"], scene, sample.id)
    if not review.accept:
        raise Reject("reviewer_rejected", review.reason, sample.id)
    captions = ctx.backend.ask(AGENTS["refiner_caption"], scene, sample.id)
    meta = {"subject": analysis.subject, "other_nouns": analysis.other_nouns}
    return [
        _output(sample, ctx, "detailed", "video_caption",
                [Turn(role="user", text=DETAILED_PROMPT), Turn(role="assistant", text=captions.detailed)], meta),
        _output(sample, ctx, "short", "video_caption",
                [Turn(role="user", text=SHORT_PROMPT), Turn(role="assistant", text=captions.short)], meta),
    ]


BRANCHES = {"qa": qa_branch, "description": description_branch}
