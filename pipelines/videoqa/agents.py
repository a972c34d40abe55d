"""The agents of the VideoRefer-style engine: typed inputs and outputs, versioned prompts.

Description branch: Analyzer -> Segmentor (SAM 2, pipelines.sam2.convert) -> Annotator ->
Reviewer -> CaptionRefiner. QA branch: Annotator -> QARefiner. Each agent renders its prompt
(`messages`) for an LLM backend and answers from track facts alone (`heuristic`) for the
offline backend. `VERSION` names the prompt template: bump it when the prompt or the heuristic
changes, so cached answers of the old prompt are not reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from pipelines.llm.messages import system, user
from pipelines.videoqa import templates
from pipelines.videoqa.tracks import TrackFacts
from schemas import placeholders

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
QAType = Literal["basic", "sequential", "relationship", "reasoning", "future_prediction"]


@dataclass(frozen=True)
class Scene:
    """What every agent may look at: the facts, the highlighted frames, labels, the caption."""

    sample_id: str
    facts: TrackFacts
    labels: tuple[str | None, ...]
    frames_png: tuple[bytes, ...] = ()
    caption: str = ""
    notes: tuple[ObjectNote, ...] = field(default=())

    def objects(self) -> str:
        return "\n".join(f"<obj{i}>: {label or 'unlabelled'}" for i, label in enumerate(self.labels))

    def notes_text(self) -> str:
        return "\n".join(f"<obj{n.index}>: {n.appearance}; {n.motion}" for n in self.notes)


class ObjectNote(BaseModel):
    index: int = Field(ge=0)
    appearance: Text
    motion: Text


class Analysis(BaseModel):
    subject: Text
    other_nouns: list[Text]


class Annotation(BaseModel):
    objects: list[ObjectNote] = Field(min_length=1)


class Review(BaseModel):
    accept: bool
    reason: Text


class Captions(BaseModel):
    detailed: Text
    short: Text


class QAPair(BaseModel):
    type: QAType
    question: Text
    answer: Text


class MultipleChoice(BaseModel):
    question: Text
    options: list[Text] = Field(min_length=4, max_length=4)
    answer: Literal["A", "B", "C", "D"]

    @model_validator(mode="after")
    def _distinct(self) -> MultipleChoice:
        if len(set(self.options)) != 4:
            raise ValueError("the four options must differ")
        return self


class QASet(BaseModel):
    qa: list[QAPair] = Field(min_length=1)
    choice: MultipleChoice | None = Field(description="Null when the video does not support one (e.g. no motion seen).")


def check_placeholders(texts: list[str], regions: int) -> None:
    """ValueError when a text names `<objN>` with N >= regions, or holds a foreign region token."""
    for text in texts:
        bad = [i for i in placeholders.referenced(text) if i >= regions]
        if bad:
            raise ValueError(f"<obj{bad[0]}> does not exist: there are only {regions} objects (<obj0>..)")
        foreign = placeholders.foreign_tokens(text)
        if foreign:
            raise ValueError(f"{foreign[0]!r} is not allowed: name objects only as <obj0>, <obj1>, ...")


GROUNDING = (
    "Objects are named <obj0>, <obj1>, ... exactly in that form. Facts measured from their masks "
    "(trust them over your impression):\n{facts}"
)


class Agent:
    """An agent's prompt is its ROLE (system turn, followed by the track facts) and its TASK (user
    turn, formatted with `objects`, `notes` and `caption`), with the highlighted frames if IMAGES."""

    NAME: ClassVar[str]
    VERSION: ClassVar[str]
    OUTPUT: ClassVar[type[BaseModel]]
    ROLE: ClassVar[str]
    TASK: ClassVar[str]
    IMAGES: ClassVar[bool] = False

    def messages(self, scene: Scene) -> list[dict]:
        task = self.TASK.format(objects=scene.objects(), notes=scene.notes_text(), caption=scene.caption)
        return [
            system(f"{self.ROLE} {GROUNDING.format(facts=scene.facts.describe())}"),
            user(task, list(scene.frames_png) if self.IMAGES else []),
        ]

    def heuristic(self, scene: Scene) -> BaseModel:
        raise NotImplementedError

    def check(self, scene: Scene, answer: BaseModel) -> None:
        """Semantic checks beyond the schema; ValueError triggers a repair turn."""


class Analyzer(Agent):
    NAME, VERSION, OUTPUT = "analyzer", "analyzer/1", Analysis
    ROLE = "You extract the nouns of a video caption."
    TASK = "Caption: {caption}\nReturn the main subject and the other nouns, each as a short phrase."

    def messages(self, scene: Scene) -> list[dict]:
        """The caption alone, as in the published engine (no facts, no frames)."""
        return [system(self.ROLE), user(self.TASK.format(caption=scene.caption))]

    def heuristic(self, scene: Scene) -> Analysis:
        labels = [label or "object" for label in scene.labels]
        return Analysis(subject=labels[0], other_nouns=labels[1:])


class Annotator(Agent):
    NAME, VERSION, OUTPUT, IMAGES = "annotator", "annotator/1", Annotation, True
    ROLE = "You describe highlighted objects in video frames."
    TASK = (
        "Objects:\n{objects}\nThe frames show them highlighted in order. For every object give its appearance "
        "(static: category, colour, shape, parts) and its motion (dynamic: actions and movement over time). "
        "Use the index of each object."
    )

    def heuristic(self, scene: Scene) -> Annotation:
        return Annotation(
            objects=[
                ObjectNote(index=o.index, appearance=templates.article(scene.labels[o.index] or "object"), motion=templates.motion(o, scene.facts))
                for o in scene.facts.objects
            ]
        )

    def check(self, scene: Scene, answer: Annotation) -> None:
        got = sorted(n.index for n in answer.objects)
        if got != list(range(len(scene.labels))):
            raise ValueError(f"describe each object exactly once: expected indices {list(range(len(scene.labels)))}, got {got}")
        check_placeholders([n.appearance + n.motion for n in answer.objects], len(scene.labels))


class Reviewer(Agent):
    NAME, VERSION, OUTPUT, IMAGES = "reviewer", "reviewer/1", Review, True
    ROLE = "You check whether masks match descriptions."
    TASK = "Descriptions:\n{notes}\nDo the highlighted regions in the frames match these descriptions?"

    def heuristic(self, scene: Scene) -> Review:
        hidden = [o.index for o in scene.facts.objects if not o.frames]
        if hidden:
            return Review(accept=False, reason=f"<obj{hidden[0]}> is never visible")
        return Review(accept=True, reason="every object is visible and its description follows from its masks")


class CaptionRefiner(Agent):
    NAME, VERSION, OUTPUT = "refiner_caption", "refiner-caption/1", Captions
    ROLE = "You write object-level video captions."
    TASK = (
        "Original caption: {caption}\nNotes:\n{notes}\nWrite a detailed caption of <obj0> (appearance, then motion "
        "in time order) and a one-sentence short caption. Refer to objects only as <objN>."
    )

    def heuristic(self, scene: Scene) -> Captions:
        o = scene.facts.objects[0]
        note = next(n for n in scene.notes if n.index == 0)
        short = templates.motion(o, scene.facts).split(". ")[0].rstrip(".") + "."
        return Captions(detailed=f"<obj0> is {note.appearance}. {note.motion}", short=short)

    def check(self, scene: Scene, answer: Captions) -> None:
        check_placeholders([answer.detailed, answer.short], len(scene.labels))
        if "<obj0>" not in answer.detailed:
            raise ValueError("the detailed caption must name the object as <obj0>")


class QARefiner(Agent):
    NAME, VERSION, OUTPUT = "refiner_qa", "refiner-qa/1", QASet
    ROLE = "You write question-answer pairs about objects in a video."
    TASK = (
        "Notes:\n{notes}\nWrite multi-round QA covering the types basic, sequential, relationship (when there are "
        "two or more objects), reasoning and future_prediction, plus one multiple-choice question with four "
        "distinct options and the letter of the correct one. Answers must follow from the facts and notes. "
        "Refer to objects only as <objN>."
    )

    def heuristic(self, scene: Scene) -> QASet:
        rounds = templates.qa_rounds(scene.facts)
        mc = templates.multiple_choice(scene.facts, seed=scene.sample_id)
        return QASet(
            qa=[QAPair(type=t, question=q, answer=a) for t, q, a in rounds],
            choice=None if mc is None else MultipleChoice(question=mc[0], options=mc[1], answer=mc[2]),
        )

    def check(self, scene: Scene, answer: QASet) -> None:
        texts = [t for p in answer.qa for t in (p.question, p.answer)]
        if answer.choice is not None:
            texts += [answer.choice.question, *answer.choice.options]
        check_placeholders(texts, len(scene.labels))


AGENTS: dict[str, Agent] = {a.NAME: a for a in (Analyzer(), Annotator(), Reviewer(), CaptionRefiner(), QARefiner())}
