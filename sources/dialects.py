"""Indexed region-tag dialects (`<regionN>`, `<Mark N>`, ...) and their mapping to canonical `<obj{i}>`.

An indexed dialect names region N (1-based, into the record's annotation or prompt list) with
a tag; `region_map` reads every text of a record once, checks the tags, and numbers the
regions that are actually named in native order; `rewrite` then puts `<obj{i}>` in place of
each tag. Regions a record never names are left out (the adapter notes them in `meta`), so a
sample's regions are exactly the ones its text talks about, in their native order.

Repairs are limited to tags whose index is unambiguous (the typo variants below); anything
still looking like a tag afterwards is a `region_tag_malformed` reject, an index outside the
list a `region_index_out_of_range` reject.

    OSPREY  `<region1>`, and the typos `<region1]`, `<region1.`, `<region 1>`, `<Region1>`,
            `<regin1>`, `<regin 1>`, `<region of1>`; not repairable: `<region>` (no index).
    MDVP    `<Mark 1>`, `<Region 1>` and the bench form `Region 1` (capital R, no brackets);
            not repairable: `<Mark>`, `<Mark one>`.

A new indexed dialect is one more `Dialect(tag=..., leftover=...)`. Dialects that name regions
by position instead of index (VideoRefer's and the PixelRefer release's bare `<region>` in
order) are not indexed dialects: `PositionalBinder` reads them.

    >>> mapping = region_map(OSPREY, ["Is <region2> near <Region 3>?"], count=3, locator="x[0]")
    >>> mapping, rewrite(OSPREY, "Is <region2> near <Region 3>?", mapping)
    ({2: 0, 3: 1}, 'Is <obj0> near <obj1>?')
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from schemas import Reject, Turn
from schemas.placeholders import obj
from sources.common import native_turns

# `[<region>]` or `<region>`, optionally named just before (`<object3><region>`, `<region0> [<region>]`),
# or a later mention of such a name (`<object3>`)
_POSITIONAL = re.compile(r"(?:<((?:region|object)\d+)>\s*)?(?:\[<region>\]|<region>)|<((?:region|object)\d+)>")


@dataclass(frozen=True)
class Dialect:
    """`tag` matches one region tag, its first non-empty group the 1-based index; `leftover`
    matches what remains of an unrepairable tag once every `tag` is taken out."""

    name: str
    tag: re.Pattern[str]
    leftover: re.Pattern[str]

    def index(self, match: re.Match[str]) -> int:
        return int(next(g for g in match.groups() if g is not None))


OSPREY = Dialect(
    name="osprey",
    tag=re.compile(r"<\s*regio?n\s*(?:of\s*)?(\d+)\s*[>\].]", re.IGNORECASE),  # `<region of1>` occurs in the release
    leftover=re.compile(r"<\s*regio?n[^<>]{0,20}>?", re.IGNORECASE),
)

MDVP = Dialect(
    name="mdvp",
    tag=re.compile(r"<\s*(?:mark|region)\s*(\d+)\s*>|(?<![\w<])(?-i:Region) (\d+)\b", re.IGNORECASE),
    leftover=re.compile(r"<\s*(?:mark|region)[^<>]{0,20}>?", re.IGNORECASE),
)


def region_map(dialect: Dialect, texts: Iterable[str], count: int, locator: str) -> dict[int, int]:
    """Native 1-based index -> canonical 0-based index, for the regions the texts name, in native order.

    Raises Reject `region_tag_malformed` or `region_index_out_of_range` (`count` regions exist).
    """
    named: set[int] = set()
    for text in texts:
        for match in dialect.tag.finditer(text):
            n = dialect.index(match)
            if not 1 <= n <= count:
                raise Reject("region_index_out_of_range",
                             f"{match.group(0)!r} names region {n} but the record has {count}", locator)
            named.add(n)
        bad = dialect.leftover.search(dialect.tag.sub("", text))
        if bad:
            raise Reject("region_tag_malformed",
                         f"{bad.group(0)!r} is not a {dialect.name} region tag with an index", locator)
    return {n: i for i, n in enumerate(sorted(named))}


def rewrite(dialect: Dialect, text: str, mapping: dict[int, int]) -> str:
    """`text` with every tag replaced by the canonical placeholder of `mapping` (from `region_map`)."""
    return dialect.tag.sub(lambda m: f"<obj{mapping[dialect.index(m)]}>", text)


def map_conversation(
    dialect: Dialect, conversations: object, count: int, locator: str
) -> tuple[list[Turn], list[int], dict]:
    """Native `[{from, value}]` turns -> (canonical turns, named native indices in order, meta notes).

    Records sometimes open with `gpt` turns (Osprey, MDVP); the Sa2VA-family loaders skip them
    and so does this, noting `dropped_leading_turns`. Regions never named are noted as
    `unreferenced_regions` (1-based); the caller keeps only the regions in the returned list.
    """
    if not isinstance(conversations, list) or not all(
        isinstance(t, dict) and isinstance(t.get("value"), str) for t in conversations
    ):
        raise Reject("bad_turn", "conversations must be a list of {from, value: str}", locator)
    skip = 0
    while skip < len(conversations) and conversations[skip].get("from") == "gpt":
        skip += 1
    mapping = region_map(dialect, (t["value"] for t in conversations[skip:]), count, locator)
    turns = native_turns(conversations[skip:], lambda text: rewrite(dialect, text, mapping), locator)
    notes: dict = {}
    if skip:
        notes["dropped_leading_turns"] = skip
    if len(mapping) < count:
        notes["unreferenced_regions"] = [n for n in range(1, count + 1) if n not in mapping]
    return turns, list(mapping), notes


def native_dialogue(*values: str) -> list[dict]:
    """Native turns alternating human/gpt, as the releases write them (for fixture writers)."""
    return [{"from": "gpt" if i % 2 else "human", "value": v} for i, v in enumerate(values)]


class PositionalBinder:
    """Positional dialect text -> canonical: the k-th `<region>` across a record's turns is
    `<obj{k}>`. A name written just before it (`<object3><region>`) is bound to it, so later
    mentions of `<object3>` become the same `<obj{k}>`; a name never bound is a
    `placeholder_unbound` reject. Call it on each turn in order (a `native_turns` converter);
    `seen` is then the number of `<region>` placeholders, which the caller checks against its
    masks."""

    def __init__(self, locator: str):
        self.seen, self.names, self.locator = 0, {}, locator

    def __call__(self, text: str) -> str:
        return _POSITIONAL.sub(self._replace, text)

    def _replace(self, m: re.Match) -> str:
        name, mention = m.group(1), m.group(2)
        if mention is not None:
            if mention not in self.names:
                raise Reject("placeholder_unbound", f"<{mention}> has no <{mention}><region> before it", self.locator)
            return obj(self.names[mention])
        if name is not None:
            self.names[name] = self.seen
        self.seen += 1
        return obj(self.seen - 1)
