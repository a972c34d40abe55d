"""The mixing recipe: which samples of which sources make each training stage (`pixelrefer mix`).

A recipe is YAML validated by these models; bundled recipes live in `pipelines/recipes/`:

    name: demo
    seed: 0
    stages:
      - name: stage1
        entries:
          - {name: lvis-recognition, source: lvis, tasks: [recognition], count: 100}
          - {name: vg-phrases, source: vg, fraction: 0.5, filters: {max_regions: 1}}
          - {name: hc-stvg, source: hcstvg, count: 10000, supported: false, note: "no adapter yet"}

Example:
    >>> recipe = Recipe.from_yaml(Path("pipelines/recipes/demo.yaml"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.sample import Task

_NAME = r"^[A-Za-z0-9_.-]+$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Filters(_Model):
    """Conditions a sample must meet to be a candidate of an entry (all that are set)."""

    splits: list[str] | None = Field(default=None, description="Keep these `split` values only.")
    media_kind: Literal["image", "video"] | None = Field(default=None, description="Keep images or videos only.")
    prompts: list[Literal["mask", "box", "point"]] | None = Field(
        default=None, description="Keep samples whose every region has one of these prompt kinds."
    )
    max_regions: int | None = Field(default=None, ge=1, description="Keep samples with at most this many regions.")


class Entry(_Model):
    """A slice of one source: its candidates (subsets x tasks x filters) and how many to take."""

    name: str = Field(pattern=_NAME, description="Unique in its stage; keys the selection hash and the report.")
    source: str = Field(description="Registry name of the source.")
    subsets: list[str] | None = Field(
        default=None, description="Subsets to draw from, as names or shell patterns (`*lvis*`); null means all."
    )
    tasks: list[Task] | None = Field(default=None, description="Tasks to draw from; null means all.")
    count: int | None = Field(default=None, ge=0, description="Samples to take (all there are when fewer).")
    fraction: float | None = Field(default=None, gt=0, le=1, description="Share of the candidates to take.")
    filters: Filters = Field(default_factory=Filters)
    supported: bool = Field(default=True, description="False: published in the recipe but not ingestible here yet.")
    note: str = Field(default="", description="Why an entry is unsupported, or where its count comes from.")

    @model_validator(mode="after")
    def _count_or_fraction(self) -> Entry:
        if (self.count is None) == (self.fraction is None):
            raise ValueError(f"entry {self.name}: give exactly one of count or fraction")
        return self


class Stage(_Model):
    name: str = Field(pattern=_NAME, description="Output file name: mix/<recipe>/<stage>.parquet.")
    description: str = ""
    entries: list[Entry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_entries(self) -> Stage:
        names = [e.name for e in self.entries]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"stage {self.name}: entry names must be unique, repeated: {duplicated}")
        return self


class Recipe(_Model):
    name: str = Field(pattern=_NAME, description="Output folder name: mix/<name>/.")
    description: str = ""
    seed: int = Field(default=0, description="Same seed, same selection and order.")
    stages: list[Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_stages(self) -> Recipe:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"recipe {self.name}: stage names must be unique, got {names}")
        return self

    @classmethod
    def from_yaml(cls, path: Path) -> Recipe:
        return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
