"""`pixelrefer`: the command line of pixelrefer-data (DESIGN.md section 5).

Each verb lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`;
only the module of the verb being run is imported, so `pixelrefer --help` stays instant.

    pixelrefer --help
    pixelrefer validate samples.jsonl
    pixelrefer --debug mix --recipe my.yaml --out build    # an error shows its traceback
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

from pipelines import errors

# verb -> (module, one-line help), in the order a user meets them.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("pipelines.demo", "Run the whole chain on the embedded demo corpus (CPU, minutes)."),
    "sources": ("pipelines.sources_cmd", "List the source adapters with their licence and expected layout."),
    "demo-data": ("pipelines.demo_data", "Write the native-format demo corpus of every registered source."),
    "ingest": ("pipelines.ingest", "Convert native releases into unified Parquet parts, in parallel on Ray."),
    "stats": ("pipelines.stats", "Summarise a unified dataset per source and task (table + JSON)."),
    "mix": ("pipelines.mix", "Select samples per stage from a recipe, deterministically, with exact dedup."),
    "segment": ("pipelines.segment", "Turn box/point prompts into masks with SAM 2."),
    "videoqa": ("pipelines.videoqa.cli", "Generate video QA and captions with the multi-agent engine."),
    "export": ("pipelines.export", "Write a mixed stage as an official PixelRefer / VideoRefer training JSON."),
    "shard": ("pipelines.shard", "Precompute SAOT crops and write WebDataset shards."),
    "train": ("train.train", "Train a PixelRefer model (Vision-Object or Lite) from shards; resumes in its output_dir."),
    "generate": ("pipelines.generate", "Answer samples' questions with a trained checkpoint (greedy or sampled, batched)."),
    "build": ("pipelines.build", "Run every stage of a recipe (ingest to report), resumably."),
    "inspect": ("pipelines.inspect", "Render samples with their masks, boxes and points as PNG."),
    "report": ("pipelines.report", "Write a self-contained HTML report of a build."),
    "validate": ("pipelines.validate", "Validate a JSONL/Parquet file of samples; print rejects by reason."),
    "eval": ("pipelines.evaluate.cli", "Score a checkpoint or predictions on the paper's benchmarks, beside its numbers."),
}


def _version() -> str:
    try:
        return version("pixelrefer-data")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser(verb: str | None) -> argparse.ArgumentParser:
    """The top-level parser; only `verb`'s own arguments are loaded (its module is imported)."""
    parser = argparse.ArgumentParser(
        prog="pixelrefer",
        description="Build PixelRefer-style region data from public releases and train on it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true", help="On an error, show its traceback instead of one line.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == verb:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb. Whatever it raises is printed as one line, `error: ...`, with exit status 2
    for a user error and 1 for an internal one (`pipelines.errors`), unless `--debug` precedes
    the verb: then the traceback shows."""
    argv = sys.argv[1:] if argv is None else argv
    verb = next((a for a in argv if a in COMMANDS), None)
    try:
        return _run(argv, verb)
    except Exception as err:  # noqa: BLE001 - every failure of a verb ends here, as one line
        if "--debug" in (argv[: argv.index(verb)] if verb else argv):
            raise
        return errors.print_error(err)


def _run(argv: list[str], verb: str | None) -> int:
    parser = build_parser(verb)
    args, extra = parser.parse_known_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return importlib.import_module(COMMANDS[args.verb][0]).run(args)


if __name__ == "__main__":
    sys.exit(main())
