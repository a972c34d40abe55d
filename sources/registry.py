"""Name -> adapter registry: our adapters, plus any installed under the `pixelrefer.sources` entry-point group.

A third-party package adds a dataset without editing this repository by declaring, in its own
pyproject.toml:

    [project.entry-points."pixelrefer.sources"]
    mydata = "mypackage.mydata:MyDataAdapter"

Example:
    >>> adapter = get("lvis")
    >>> units = adapter.units(Path("/data/lvis"))
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from sources.base import Adapter

# name -> "module:Class"; imported on first use so listing stays cheap.
BUILTIN: dict[str, str] = {
    "lvis": "sources.lvis:LvisAdapter",
    "paco": "sources.paco:PacoAdapter",
    "refcoco": "sources.refcoco:RefcocoAdapter",
    "vg": "sources.vg:VgAdapter",
    "osprey": "sources.osprey:OspreyAdapter",
    "mdvp": "sources.mdvp:MdvpAdapter",
    "mevis": "sources.mevis:MevisAdapter",
    "videorefer": "sources.videorefer:VideoReferAdapter",
    "dam": "sources.dam:DamAdapter",
    "hcstvg": "sources.hcstvg:HcstvgAdapter",
    "pascalpart": "sources.pascalpart:PascalPartAdapter",
    "partimagenet": "sources.partimagenet:PartImageNetAdapter",
    "vcr": "sources.vcr:VcrAdapter",
    "llava": "sources.llava:LlavaAdapter",
    "pixelrefer-release": "sources.release:ReleaseAdapter",
}

ENTRY_POINT_GROUP = "pixelrefer.sources"


def available() -> dict[str, str]:
    """Every adapter name with its import target, built-ins first, then entry points (sorted)."""
    found = dict(BUILTIN)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in found:
            raise ValueError(f"entry point {ep.value!r} reuses the built-in source name {ep.name!r}")
        found[ep.name] = ep.value
    return found


def get(name: str) -> Adapter:
    """An adapter instance by name; a clear error lists the known names."""
    targets = available()
    if name not in targets:
        raise KeyError(f"unknown source {name!r}; known sources: {', '.join(sorted(targets))}")
    module, _, cls = targets[name].partition(":")
    adapter = getattr(importlib.import_module(module), cls)()
    if adapter.name != name:
        raise ValueError(f"{targets[name]} declares name {adapter.name!r}, registered as {name!r}")
    return adapter
