"""Answers from the trainer's generation on benchmark samples (tiny random model, CPU): every
sample answered in order, through the shard writer's encoding; a sample it cannot encode is
answered "" and counted by reason."""

from __future__ import annotations

import pytest

from pipelines.evaluate.benchmarks import BENCHMARKS, loader_of
from pipelines.evaluate.generation import answers
from sources.roots import Roots
from train.config import load_config
from train.prepare import prepare_model
from train.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tiny():
    cfg = load_config("train/configs/tiny.yaml")
    tokenizer = load_tokenizer(cfg.model.tokenizer)
    return prepare_model(cfg, tokenizer), tokenizer, cfg.data


@pytest.mark.parametrize("name", ["osprey-lvis", "videorefer-bench-q"])
def test_every_sample_is_answered_in_order(tiny, tmp_path, name):
    model, tokenizer, data = tiny
    loader = loader_of(BENCHMARKS[name])
    loader.write_fixture(tmp_path)
    samples, _ = loader.load(Roots.of(tmp_path))
    texts, not_generated = answers(model, tokenizer, samples, Roots.of(tmp_path), data, max_new_tokens=4)
    assert len(texts) == len(samples) and all(isinstance(t, str) for t in texts)
    assert not_generated == {}


def test_a_sample_that_cannot_be_encoded_gets_an_empty_answer(tiny, tmp_path):
    model, tokenizer, data = tiny
    loader = loader_of(BENCHMARKS["vg-val"])
    loader.write_fixture(tmp_path)
    samples, _ = loader.load(Roots.of(tmp_path))
    samples[1].regions[0].frames[0].mask = None  # a bare box: the encoder needs the rectangle mask
    texts, not_generated = answers(model, tokenizer, samples, Roots.of(tmp_path), data, max_new_tokens=4)
    assert texts[1] == "" and not_generated == {"region_without_mask": 1}
