"""LLM-judged metrics, through `pipelines.llm.LLMClient` against any OpenAI-compatible server.

The judge's answers are structured (a pydantic schema per benchmark), cached in
`<out>/judge/cache/requests.sqlite` (so scoring the same predictions again sends nothing),
rate limited and retried by the client; what still fails stops the run, naming
`<out>/judge/failed_requests.jsonl` (a rerun asks only what is not cached yet). The judge model
and prompt version are written into the result: scores from different judges are not comparable.

* VideoRefer-Bench-D: the judge rates a description against the reference on Subject
  Correspondence, Appearance, Temporal and Hallucination, 0-5 each; the user turn is
  VideoRefer's (`##Correct answer: ...` / `##Predicted answer: ...`), the system prompt is ours
  (the official `system.txt` is not in the released tree); Avg is the mean of the 4 dimensions.
* Ferret-Bench reasoning: Ferret's review (`ferret/eval/eval_gpt_review_3newclass.py`): context,
  question with the box in normalised coordinates, GPT-4's answer as assistant 1, the prediction
  as assistant 2, both rated 1-10; the score is 100 x mean(assistant 2) / mean(assistant 1).
* DLC-Bench: DAM's protocol (`evaluation/eval_model_outputs.py`): the judge answers each
  multiple-choice question from the description alone, after a recognition question ("is it a
  <class>?"); a failed recognition caps every score of that object at 0; Pos and Neg are means
  over objects of their questions' mean scores (objects without negatives skip Neg), Avg their
  mean. DAM's judge is Llama-3.1-8B-Instruct: use it for numbers comparable to the paper's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel, Field

from pipelines.errors import UserError
from pipelines.evaluate.metrics import mean
from pipelines.llm import LLMClient, LLMConfig, LLMFailure
from pipelines.llm.messages import system, user
from schemas import Sample
from schemas.placeholders import obj

PROMPT_VERSION = "evaluate-judge/1"
DIMENSIONS = {"SC": "subject_correspondence", "AD": "appearance_description", "TD": "temporal_description",
              "HD": "hallucination_detection"}

DESCRIPTION_SYSTEM = """\
You evaluate a predicted description of one object in a video against the correct description.
Score the prediction from 0 to 5 (integers, 5 best) on each of four dimensions:
1. subject_correspondence: does the subject of the prediction correspond to the subject of the correct description?
2. appearance_description: are the appearance details (colour, shape, texture, other visual attributes) accurate?
3. temporal_description: is the described motion consistent with the actual movements?
4. hallucination_detection: does the prediction avoid facts, actions or elements absent from the correct description
   (imaginative interpretations, incorrect inferences)? 5 means no hallucination."""

FERRET_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
FERRET_RULE = """\
We would like your feedback on the performance of two AI assistants answering the user question above, which asks \
about a specific region of an image. For reference, the image is described by the context: its objects with \
bounding boxes (x1, y1, x2, y2, floats from 0 to 1: top left x, top left y, bottom right x, bottom right y), \
relationships between objects, region descriptions and five captions.
Please rate the spatial correspondence, helpfulness, relevance, accuracy and level of detail of their responses. \
Each assistant receives an overall score from 1 to 10, higher meaning better overall performance: score_1 for \
Assistant 1, score_2 for Assistant 2. Then give a comprehensive explanation, avoiding any bias and making sure the \
order in which the responses were presented does not affect your judgment."""

DLC_PROMPT = """\
Answer the multiple-choice question from the text description of an object in an image. Rules:
1. Give exactly one answer from the choices; no reasoning, no correction, do not repeat the question.
2. There is no need for an exact match: choose the closest option based on the description.

The description is:
{description}

From the description above, answer the following question with one of the choices:
{question}"""
LETTERS = "ABCDE"


class DescriptionScores(BaseModel):
    subject_correspondence: int = Field(ge=0, le=5)
    appearance_description: int = Field(ge=0, le=5)
    temporal_description: int = Field(ge=0, le=5)
    hallucination_detection: int = Field(ge=0, le=5)


class PairReview(BaseModel):
    score_1: float = Field(ge=1, le=10, description="Assistant 1's overall score.")
    score_2: float = Field(ge=1, le=10, description="Assistant 2's overall score.")
    explanation: str


class ChoiceReply(BaseModel):
    answer: str = Field(description="The chosen option: its letter, e.g. 'A'.")


def judge_client(config: LLMConfig, out: Path) -> LLMClient:
    """The judge's client, its cache and failure log under `<out>/judge/`."""
    return LLMClient(config, out / "judge")


def judge_record(client: LLMClient) -> dict:
    """What the result says about the judge: model, endpoint, prompt version, requests and cache hits."""
    return {"model": client.config.model, "base_url": client.config.base_url, "prompt_version": PROMPT_VERSION,
            "temperature": client.config.temperature, "stats": client.stats_dict()}


def _ask_all(client: LLMClient, agent: str, requests: list[tuple[list[dict], type[BaseModel], str]]) -> list[BaseModel]:
    """Every request's answer, `client.config.concurrency` at a time, in order; any failure stops the run."""
    def ask(request):
        messages, schema, locator = request
        try:
            return client.complete(agent, messages, schema, PROMPT_VERSION, locator)
        except LLMFailure as failure:
            return failure

    with ThreadPoolExecutor(max_workers=client.config.concurrency) as pool:
        answers = list(pool.map(ask, requests))
    failed = [a for a in answers if isinstance(a, LLMFailure)]
    if failed:
        raise UserError(f"{len(failed)} of {len(answers)} judge requests failed (first: {failed[0]})",
                        "judge/failed_requests.jsonl", "rerun the same command: answered requests come from the cache")
    return answers


def judge_descriptions(samples: Sequence[Sample], predictions: Sequence[str], client: LLMClient) -> tuple[dict, list[dict]]:
    """VideoRefer-Bench-D: the four dimensions' means (0-5) and their mean."""
    requests = [([system(DESCRIPTION_SYSTEM), user(f"##Correct answer: {_reference(s)}\n##Predicted answer: {p}\n")],
                  DescriptionScores, s.id) for s, p in zip(samples, predictions)]
    rows = [a.model_dump() for a in _ask_all(client, "bench-d", requests)]
    metrics = {short: mean(r[field] for r in rows) for short, field in DIMENSIONS.items()}
    metrics["Avg"] = mean(metrics.values())
    return metrics, rows


def judge_ferret(samples: Sequence[Sample], predictions: Sequence[str], client: LLMClient) -> tuple[dict, list[dict]]:
    """Ferret-Bench referring reasoning: 100 x mean(prediction's score) / mean(reference's score)."""
    requests = []
    for s, p in zip(samples, predictions):
        question = s.conversation[0].text.replace(obj(0), _normalised_box(s))
        answer = re.sub(r" \[.*?\]", "", p)  # Ferret drops the boxes a refer_reason answer quotes
        content = (f"[Context]\n{s.meta['context']}\n\n[Question]\n{question}\n\n"
                   f"[Assistant 1]\n{_reference(s)}\n\n[End of Assistant 1]\n\n"
                   f"[Assistant 2]\n{answer}\n\n[End of Assistant 2]\n\n[System]\n{FERRET_RULE}\n\n")
        requests.append(([system(FERRET_SYSTEM), user(content)], PairReview, s.id))
    rows = [a.model_dump() for a in _ask_all(client, "ferret", requests)]
    return {"Reasoning": 100 * mean(r["score_2"] for r in rows) / mean(r["score_1"] for r in rows)}, rows


def judge_dlc(samples: Sequence[Sample], predictions: Sequence[str], client: LLMClient) -> tuple[dict, list[dict]]:
    """DLC-Bench: Pos, Neg and their mean Avg, x 100."""
    plan = [[_recognition_question(s.meta["class_name"]), *s.meta["questions"]] for s in samples]
    requests = [([user(DLC_PROMPT.format(description=p, question=_choices_text(q)))], ChoiceReply, f"{s.id} q{k}")
                for s, p, questions in zip(samples, predictions, plan) for k, q in enumerate(questions)]
    replies = iter(_ask_all(client, "dlc", requests))
    rows = [_dlc_row(questions, [next(replies).answer for _ in questions]) for questions in plan]
    pos = mean(r["pos"] for r in rows)
    negatives = [r["neg"] for r in rows if r["neg"] is not None]
    neg = mean(negatives)
    return {"Pos": 100 * pos, "Neg": 100 * neg, "Avg": 100 * (pos + neg) / 2}, rows


def _dlc_row(questions: list[dict], replies: list[str]) -> dict:
    """One object's scores: the recognition result caps the attribute questions at 0 when false."""
    picked = [choice_index(reply, [c[0] for c in q["choices"]]) for reply, q in zip(replies, questions)]
    recognised = picked[0] == 0  # choice 0 is "Yes"
    scores: dict[str, list[float]] = {"positive": [], "negative": []}
    for q, index in zip(questions[1:], picked[1:]):
        score = q["choices"][index][1] if index is not None else 0  # no matching choice: as if not mentioned
        scores[q["type"]].append(score if recognised else min(0, score))
    return {"recognised": recognised, "replies": replies, "picked": picked,
            "pos": mean(scores["positive"]), "neg": mean(scores["negative"]) if scores["negative"] else None}


def choice_index(reply: str, choices: Sequence[str]) -> int | None:
    """The option a judge's reply picks: its letter ("B", "B. text"), else the one choice whose text
    it holds (the latest-starting one if several), else None."""
    text = reply.strip().lower()
    match = re.fullmatch(r"([a-e])(?:[.)].*)?", text, flags=re.DOTALL)
    if match and LETTERS.lower().index(match.group(1)) < len(choices):
        return LETTERS.lower().index(match.group(1))
    found = [(text.rindex(c.lower()), len(c), i) for i, c in enumerate(choices) if c.lower() in text]
    return max(found)[2] if found else None


def _recognition_question(class_name: str) -> dict:
    article = "an" if class_name[:1].lower() in "aeiou" else "a"
    return {"type": "recognition", "choices": [["Yes", "correct"], ["No", "incorrect"]],
            "question": f"Is it likely that the object in the description is {article} {class_name} or an object of "
                        "a similar type? Again, it does not have to be an exact match."}


def _choices_text(question: dict) -> str:
    return question["question"] + "\n" + "\n".join(f"{LETTERS[i]}. {c[0]}" for i, c in enumerate(question["choices"]))


def _normalised_box(sample: Sample) -> str:
    """The region's box as Ferret writes it in questions: [x1, y1, x2, y2] over the image size."""
    x0, y0, x1, y1 = sample.regions[0].frames[0].box
    w, h = sample.media.width, sample.media.height
    return f"[{x0 / w:.3f}, {y0 / h:.3f}, {x1 / w:.3f}, {y1 / h:.3f}]"


def _reference(sample: Sample) -> str:
    return sample.conversation[-1].text

