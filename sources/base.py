"""The contract every source adapter implements (one module per dataset in `sources/`).

An adapter reads one public release in its official layout (`LAYOUT`, shown by
`pixelrefer sources --layout NAME`), from the folders the user declared (`sources.roots.Roots`):

* `units(roots)` splits the release into independent, ordered units of work (a slice of
  images, a tar member range, a byte range of a JSON array) small enough to ship to a Ray
  worker as a tiny JSON-able `Unit`; a missing or unreadable file raises, naming it;
* `records(roots, unit)` yields the unit's native records as `(locator, record)` pairs, in order;
* `outcomes(roots, record, locator)` turns one record into its sample(s) and rejects, building
  each sample with `self.sample(...)` (which fills source, licence, id, provenance and validates);
* `inputs(roots, unit)` names the annotation files a unit reads (default: its spec's `file`),
  so that ingest can fingerprint them and redo a part whose files changed (an adapter whose
  unit specs do not name their files under "file" overrides it);
* `write_fixture(root)` writes a tiny deterministic copy of the release in the same native
  layout (known shapes, so masks are exact), including records for each known trap.

`convert(roots, unit)` is shared: it isolates every record (`isolated`), so a record that fails
becomes that record's reject, never its unit's; a failure no rule names is counted as
`adapter_error` with the exception's type and message (our bug, shown in the ingest summary).
A sample whose id an earlier record of the same unit already made (a release that lists a
record twice) becomes a `duplicate_id` reject.
`read = written + rejected` holds by construction. Adapters import only from `schemas`
(DESIGN.md section 2).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from schemas import Reject, Sample, make_id, validate
from sources.roots import Roots

Outcome = Sample | Reject
ADAPTER_ERROR = "adapter_error"


@dataclass(frozen=True)
class Unit:
    """One independent piece of a source's work, cheap to pickle."""

    source: str
    name: str  # stable and unique within the source; sorts the output parts
    spec: dict[str, Any] = field(default_factory=dict, hash=False)  # adapter-specific, JSON-able


def isolated(locator: str, build: Callable[..., Any], *args: Any) -> Iterator[Any]:
    """What `build(*args)` makes of one record (or one part of it): the Sample or Reject it
    returns, or each item it returns in an iterable or yields; then, if it raises, one reject:
    its own `Reject`, or `adapter_error` naming the exception it hit. Items already yielded
    stay yielded, so nothing is counted twice and nothing is lost."""
    try:
        result = build(*args)
        if isinstance(result, (Sample, Reject)):
            yield result
        else:
            yield from result
    except Reject as reject:
        yield reject if reject.locator else Reject(reject.reason, reject.message, locator)
    except Exception as err:  # noqa: BLE001 - any unnamed failure is one record's counted reject
        yield Reject(ADAPTER_ERROR, f"{type(err).__name__}: {str(err)[:500]}", locator)


class Adapter(ABC):
    """Base class of source adapters; subclasses set the class attributes below."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    license: ClassVar[str] = ""
    LAYOUT: ClassVar[str] = ""  # the release tree the adapter expects, shown by `pixelrefer sources`

    @abstractmethod
    def units(self, roots: Roots) -> list[Unit]:
        """Ordered units of work for the release (raise FileNotFoundError naming what is missing)."""

    @abstractmethod
    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        """`(locator, record)` for each native record of one unit, in order; a record may be a
        `Reject` when the unit already knows it is unusable."""

    @abstractmethod
    def outcomes(self, roots: Roots, record: Any, locator: str) -> Outcome | Iterable[Outcome]:
        """The sample(s) and rejects of one record; raise `Reject` to reject the whole record."""

    def inputs(self, roots: Roots, unit: Unit) -> list[Path]:
        """The annotation files `unit` reads (media files are not listed: the samples name them)."""
        return [roots.annotations / unit.spec["file"]] if "file" in unit.spec else []

    @abstractmethod
    def write_fixture(self, root: Path) -> None:
        """Write a tiny native-layout copy of the release under `root`."""

    def convert(self, roots: Roots | Path, unit: Unit) -> Iterator[Outcome]:
        """Every record's outcomes, each record isolated from the others."""
        roots = Roots.of(roots)
        made: set[str] = set()  # a record repeating an earlier one's id (a release can list a record twice)
        for locator, record in self.records(roots, unit):
            if isinstance(record, Reject):
                yield record
                continue
            for outcome in isolated(locator, self.outcomes, roots, record, locator):
                if isinstance(outcome, Sample):
                    if outcome.id in made:
                        outcome = Reject("duplicate_id", f"sample id {outcome.id} was already made from an earlier "
                                         "record of this unit", outcome.provenance.locator)
                    else:
                        made.add(outcome.id)
                yield outcome

    def sample(self, *, subset: str, native_id: str | int, file: str, locator: str, split: str = "train",
               license: str | None = None, **fields: Any) -> Sample:
        """The validated sample `{name}/{subset}/{native_id}` with its provenance (raises Reject).
        `fields` are the rest of the Sample: task, media, regions, conversation, meta."""
        return validate({
            "id": make_id(self.name, subset, native_id), "source": self.name, "subset": subset, "split": split,
            "license": license or self.license, **fields,
            "provenance": {"file": file, "locator": locator, "adapter": self.name, "adapter_version": self.version},
        }, locator)
