"""A judge with known opinions behind the local OpenAI-compatible test server, so that the
LLM-judged scores of the fixtures can be computed by hand.

Its rules, per answer schema (the server answers one request at a time: judge concurrency 1):
* DescriptionScores (VideoRefer-Bench-D): 5 on every dimension when the prediction is the
  reference word for word, else SC 3, AD 2, TD 1, HD 4;
* PairReview (Ferret): the reference (assistant 1) gets 8; the prediction gets 8 when it
  mentions "tools", else 4;
* ChoiceReply (DLC-Bench): the recognition question is answered Yes when the class name, less
  a plural "s", is in the description; an attribute question picks the first choice whose text
  the description holds, else the "not mentioned" choice.
"""

from __future__ import annotations

import re

from tests.pipelines.fake_openai import FakeOpenAI

KEY_ENV, KEY = "TEST_JUDGE_KEY", "sk-judge-test"


class JudgeAnswers(dict):
    """`answers[schema]` for the server: computed from the request being answered."""

    server: FakeOpenAI

    def __getitem__(self, schema: str) -> dict:
        content = self.server.requests[-1][1]["messages"][-1]["content"]
        return getattr(self, schema)(content)

    @staticmethod
    def DescriptionScores(content: str) -> dict:
        correct, predicted = re.fullmatch(r"##Correct answer: (.*)\n##Predicted answer: (.*)\n", content, re.DOTALL).groups()
        scores = (5, 5, 5, 5) if correct == predicted else (3, 2, 1, 4)
        return dict(zip(("subject_correspondence", "appearance_description", "temporal_description", "hallucination_detection"), scores))

    @staticmethod
    def PairReview(content: str) -> dict:
        predicted = re.search(r"\[Assistant 2\]\n(.*?)\n\n\[End of Assistant 2\]", content, re.DOTALL).group(1)
        return {"score_1": 8, "score_2": 8 if "tools" in predicted else 4, "explanation": "scripted"}

    @staticmethod
    def ChoiceReply(content: str) -> dict:
        description = re.search(r"The description is:\n(.*?)\n\nFrom the description", content, re.DOTALL).group(1).lower()
        question, *choices = content.split("one of the choices:\n")[1].split("\n")
        recognition = re.search(r"is an? (.+?) or an object", question)
        if recognition:
            return {"answer": "A" if recognition.group(1).removesuffix("s") in description else "B"}
        texts = [c[3:] for c in choices]
        picked = next((i for i, t in enumerate(texts) if t in description), texts.index("not mentioned"))
        return {"answer": "ABCDE"[picked]}


def judge_server() -> FakeOpenAI:
    answers = JudgeAnswers()
    answers.server = FakeOpenAI(answers)
    return answers.server
