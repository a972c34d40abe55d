"""Evaluation on the PixelRefer paper's benchmarks: loaders, metrics, LLM judge, results.

    pixelrefer eval --benchmark osprey-lvis --root DIR --predictions answers.jsonl --out eval/lvis

Modules: `loader` (the benchmark-loader contract), `image_benchmarks` / `video_benchmarks`
(one loader per benchmark, each with a native-format fixture writer), `benchmarks` (registry and
scoring dispatch), `metrics` (SSim/SIoU, choice accuracy, COCO caption metrics), `judge`
(LLM-judged metrics), `generation` (a checkpoint's answers via `train.generate`), `published`
(the paper's numbers), `results` (result JSON and HTML), `cli` (the verb). See docs/evaluation.md.
"""
