"""Question templates for sources whose native records hold answers only, and a deterministic pick.

VG region phrases and Osprey's `description` entries carry no question; the adapters ask one
from these lists. The choice hashes the sample id and turn number (CRC-32), so it varies across
samples yet is the same on every run and machine. `{obj}` stands for the region placeholder.

    >>> pick(SHORT_DESCRIPTION, "vg/regions/1382:0").format(obj="<obj0>")
"""

from __future__ import annotations

import zlib

SHORT_DESCRIPTION = (
    "Describe {obj} in a short phrase.",
    "What is in {obj}? Answer with a short phrase.",
    "Give a brief description of {obj}.",
    "Summarise {obj} in a few words.",
    "What does {obj} show? Reply briefly.",
)

DETAILED_DESCRIPTION = (
    "Describe {obj} in detail.",
    "Give a detailed description of {obj}.",
    "What can you tell me about {obj}? Please be thorough.",
    "Explain in detail what {obj} shows.",
    "Provide a thorough description of {obj}.",
)


def pick(templates: tuple[str, ...], key: str) -> str:
    """The template for `key` (e.g. `"{sample id}:{turn}"`), stable across runs and platforms."""
    return templates[zlib.crc32(key.encode("utf-8")) % len(templates)]
