"""`pixelrefer demo-data --out DIR`: write every registered source's native-format fixture.

Each adapter's `write_fixture` writes a tiny, deterministic copy of its release (images drawn
with known rectangles, plus records for the release's known traps) under `DIR/<source>/`, so
the whole chain runs without any real dataset:

    pixelrefer demo-data --out demo
    pixelrefer demo-data --out demo --sources lvis,refcoco
    pixelrefer ingest --source all --root demo --out build
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from sources import registry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="Folder to write into; each source goes to OUT/<source>/.")
    parser.add_argument("--sources", help="Comma-separated source names to write (default: every registered source).")
    parser.add_argument("--overwrite", action="store_true",
                        help="Replace an existing non-empty OUT/<source>/ (default: refuse, so no stale file survives).")


def write_demo(out: Path, names: list[str], overwrite: bool = False) -> dict[str, list[Path]]:
    """Write the fixtures of `names` under `out`; return each source's files, sorted.

    Raises FileExistsError for a non-empty `out/<name>/` unless `overwrite`.
    """
    written = {}
    for name in tqdm(names, desc="demo-data", unit="source", disable=None):
        root = out / name
        if root.exists() and any(root.iterdir()):
            if not overwrite:
                raise FileExistsError(f"{root} is not empty; pass --overwrite to replace it")
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
        registry.get(name).write_fixture(root)
        written[name] = sorted(p for p in root.rglob("*") if p.is_file())
    return written


def run(args: argparse.Namespace) -> int:
    known = list(registry.available())
    names = [n.strip() for n in args.sources.split(",") if n.strip()] if args.sources else known
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        print(f"pixelrefer demo-data: unknown source(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    try:
        written = write_demo(args.out, names, args.overwrite)
    except FileExistsError as err:
        print(f"pixelrefer demo-data: {err}", file=sys.stderr)
        return 2
    for name, files in written.items():
        size = sum(f.stat().st_size for f in files)
        print(f"{name:<12} {len(files):>3} files {size:>9} bytes  {args.out / name}")
    print(f"demo corpus written to {args.out}; convert it with: pixelrefer ingest --source all --root {args.out} --out BUILD")
    return 0
