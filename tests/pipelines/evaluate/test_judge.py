"""LLM-judged metrics against the local OpenAI-compatible server with a judge of known opinions
(`fake_judge`): exact scores, the judge model in the record, and free re-scoring from the cache."""

from __future__ import annotations

import pytest

from pipelines.errors import UserError
from pipelines.evaluate.benchmarks import BENCHMARKS, Scoring, loader_of, score
from pipelines.evaluate.judge import choice_index
from pipelines.llm import LLMConfig
from sources.roots import Roots
from tests.pipelines.evaluate.fake_judge import KEY_ENV

# benchmark -> (predictions in sample order, metrics by hand from fake_judge's rules)
CASES = {
    # item 0 repeats the reference (5 5 5 5), item 1 does not (3 2 1 4): SC (5+3)/2, AD (5+2)/2, TD (5+1)/2, HD (5+4)/2
    "videorefer-bench-d": (["A red block slides to the right across a grey floor.", "A blue ball."],
                           {"SC": 4.0, "AD": 3.5, "TD": 3.0, "HD": 4.5, "Avg": 3.75}),
    # reference 8 and 8; predictions 8 ("tools") and 4: 100 * mean(8, 4) / mean(8, 8)
    "ferret-reason": (["It holds tools.", "No idea."], {"Reasoning": 75.0}),
    # box: recognised, colour "red" +1, negative "no handle" +1; tiles: not recognised ("plate"),
    # colour "blue" +1 capped at 0, no negatives. Pos (1+0)/2, Neg 1/1, Avg (0.5+1)/2.
    "dlc-bench": (["A red box with no handle.", "A blue plate."], {"Pos": 50.0, "Neg": 100.0, "Avg": 75.0}),
}
REQUESTS = {"videorefer-bench-d": 2, "ferret-reason": 2, "dlc-bench": 5}  # DLC: (1 recognition + 2) + (1 + 1)


@pytest.mark.parametrize("name", sorted(CASES))
def test_judged_scores_by_hand_and_rescoring_is_free(name, judge, tmp_path):
    loader = loader_of(BENCHMARKS[name])
    loader.write_fixture(tmp_path / "bench")
    samples, _ = loader.load(Roots.of(tmp_path / "bench"))
    predictions, expected = CASES[name]
    config = LLMConfig(base_url=judge.url, model="judge-llm", api_key_env=KEY_ENV, concurrency=1)
    how = Scoring(judge=config, out=tmp_path / "run")
    found, rows, record = score(BENCHMARKS[name], samples, predictions, how)
    assert found == expected
    assert len(rows) == len(samples)
    assert len(judge.requests) == REQUESTS[name]
    assert record["judge"]["model"] == "judge-llm" and record["judge"]["prompt_version"] == "evaluate-judge/1"
    again, _, record = score(BENCHMARKS[name], samples, predictions, how)
    assert again == expected
    assert len(judge.requests) == REQUESTS[name]  # the second scoring sent nothing
    (stats,) = record["judge"]["stats"].values()
    assert (stats["requests"], stats["cache_hits"]) == (0, REQUESTS[name])


def test_judged_benchmark_without_a_judge_says_how_to_name_one(tmp_path):
    loader = loader_of(BENCHMARKS["ferret-reason"])
    loader.write_fixture(tmp_path)
    samples, _ = loader.load(Roots.of(tmp_path))
    with pytest.raises(UserError, match="--judge-url"):
        score(BENCHMARKS["ferret-reason"], samples, ["a", "b"], Scoring(out=tmp_path))


COLOURS = ["red", "green", "not mentioned"]


@pytest.mark.parametrize(("reply", "choices", "index"), [
    ("B", COLOURS, 1), ("b. green", COLOURS, 1), ("A) red", COLOURS, 0), ("The answer is green", COLOURS, 1),
    ("No", ["Yes", "No"], 1), ("purple", COLOURS, None), ("E", COLOURS, None),  # E: no fifth choice
])
def test_choice_index(reply, choices, index):
    assert choice_index(reply, choices) == index
