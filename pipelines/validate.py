"""`pixelrefer validate FILE`: check every sample of a JSONL or Parquet file against the schema.

Prints one line per reject reason with its count and the first record that hit it, then a
total; exits 0 when every record is valid and 1 otherwise.

    pixelrefer validate out/unified/lvis/part-00000.parquet
    pixelrefer validate samples.jsonl --rejects rejects.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from schemas import REASONS, Reject, validate
from schemas.arrow import iter_records


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="A .jsonl (one sample per line) or .parquet file of samples.")
    parser.add_argument("--rejects", type=Path, help="Also write every reject as {reason, locator, detail} JSONL here.")


def check_file(path: Path) -> tuple[int, list[Reject]]:
    """Validate every record of `path`; return (records read, rejects)."""
    read, rejects = 0, []
    for locator, record, error in iter_records(path):
        read += 1
        try:
            if record is None:
                raise Reject("schema_error", error, locator)
            validate(record, locator)
        except Reject as reject:
            rejects.append(reject)
    return read, rejects


def run(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"pixelrefer validate: no such file: {args.file}", file=sys.stderr)
        return 2
    try:
        read, rejects = check_file(args.file)
    except ValueError as err:
        print(f"pixelrefer validate: {err}", file=sys.stderr)
        return 2
    by_reason = Counter(r.reason for r in rejects)
    first = {}
    for r in rejects:
        first.setdefault(r.reason, r)
    for reason, count in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
        example = first[reason]
        print(f"{reason:<26} {count:>8}  e.g. {example.locator}: {example.message}")
        if reason in REASONS:
            print(f"{'':<26} {'':>8}  ({REASONS[reason]})")
    print(f"{args.file}: {read} records, {read - len(rejects)} valid, {len(rejects)} rejected")
    if args.rejects:
        with args.rejects.open("w", encoding="utf-8") as f:
            for r in rejects:
                f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    return 1 if rejects else 0
