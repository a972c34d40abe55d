"""`pixelrefer`: the command line of pixelrefer-data (DESIGN.md section 5).

Each verb lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`;
only the module of the verb being run is imported, so `pixelrefer --help` stays instant.

    pixelrefer --help
    pixelrefer validate samples.jsonl
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

# verb -> (module, one-line help), in the order a user meets them.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("pipelines.validate", "Validate a JSONL/Parquet file of samples; print rejects by reason."),
}

# Verbs whose issue has not landed yet: they say so and exit 2 instead of pretending.
PLANNED: dict[str, tuple[int, str]] = {
    "sources": (3, "List the source adapters with their licence and expected layout."),
    "demo-data": (3, "Write the native-format demo corpus of all eight sources."),
    "ingest": (4, "Convert a source's native release into unified Parquet parts (Ray)."),
    "mix": (4, "Select sample ids per stage from a recipe, deterministically."),
    "stats": (4, "Summarise a unified dataset per source and task."),
    "segment": (6, "Turn box/point prompts into masks with SAM 2."),
    "videoqa": (6, "Generate video QA and captions with the multi-agent engine."),
    "shard": (5, "Precompute SAOT crops and write WebDataset shards."),
    "train": (7, "Train a PixelRefer model from shards."),
    "build": (8, "Run every stage of a recipe, resumably."),
    "inspect": (8, "Render samples with their masks, boxes and points as PNG."),
    "report": (8, "Write an HTML report of a build."),
    "demo": (8, "Run the whole chain on the embedded demo corpus."),
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
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == verb:
            importlib.import_module(module).add_arguments(p)
    for name, (issue, help_text) in PLANNED.items():
        sub.add_parser(name, help=f"{help_text} [not available yet]", description=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verb = next((a for a in argv if a in COMMANDS or a in PLANNED), None)
    parser = build_parser(verb)
    args, extra = parser.parse_known_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    if args.verb in PLANNED:
        issue = PLANNED[args.verb][0]
        print(f"pixelrefer {args.verb}: not available yet (tracked in issue #{issue}).", file=sys.stderr)
        return 2
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return importlib.import_module(COMMANDS[args.verb][0]).run(args)


if __name__ == "__main__":
    sys.exit(main())
