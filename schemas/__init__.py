"""The data model: `Sample` and its parts, the Arrow schema, the mask codec, the placeholder grammar.

Nothing here imports from the other top-level packages; everything else imports from here.
"""

from schemas.sample import (
    RLE,
    SCHEMA_VERSION,
    TASKS,
    Media,
    Provenance,
    Region,
    RegionFrame,
    Sample,
    Turn,
    key_for,
    make_id,
)
from schemas.validate import REASONS, Reject, validate

__all__ = [
    "RLE",
    "REASONS",
    "SCHEMA_VERSION",
    "TASKS",
    "Media",
    "Provenance",
    "Region",
    "RegionFrame",
    "Reject",
    "Sample",
    "Turn",
    "key_for",
    "make_id",
    "validate",
]
