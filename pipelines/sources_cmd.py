"""`pixelrefer sources`: list the registered source adapters, or show one's expected layout.

    pixelrefer sources                 # name, adapter version, licence of every adapter
    pixelrefer sources --layout lvis   # the folder tree `ingest --root` expects for lvis

Adapters come from `sources.registry` (built-ins, then `pixelrefer.sources` entry points).
"""

from __future__ import annotations

import argparse
import sys

from sources import registry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", metavar="NAME", help="Print the expected tree under --root for source NAME instead of the table.")


def table() -> list[str]:
    """The listing, one line per adapter, columns aligned."""
    rows = [("NAME", "VERSION", "LICENSE")]
    for name in registry.available():
        adapter = registry.get(name)
        rows.append((name, adapter.version, adapter.license))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return [f"{name:<{widths[0]}}  {version:<{widths[1]}}  {license}" for name, version, license in rows]


def run(args: argparse.Namespace) -> int:
    if args.layout is None:
        print("\n".join(table()))
        print("(`pixelrefer sources --layout NAME` shows the folder tree a source expects under --root)")
        return 0
    try:
        adapter = registry.get(args.layout)
    except KeyError as err:
        print(f"pixelrefer sources: {err.args[0]}", file=sys.stderr)
        return 2
    print(f"{adapter.name} (adapter version {adapter.version}, licence: {adapter.license})")
    print(f"expected layout under --root:\n{adapter.LAYOUT.rstrip()}")
    print("\nIn a roots file (ingest/build --roots FILE.yaml) give the folder as above, or split annotations from\n"
          "media, e.g. one COCO folder shared by every COCO-based source:\n"
          f"  {adapter.name}: /data/{adapter.name}\n"
          f"  {adapter.name}: {{annotations: /data/{adapter.name}/annotations, media: [/data/coco]}}")
    return 0
