"""The mixing recipe: which samples of which sources make each training stage (`pixelrefer mix`).

A recipe is YAML validated by these models; bundled recipes live in `pipelines/recipes/`:

    name: demo
    seed: 0
    stages:
      - name: stage1
        entries:
          - {name: lvis-recognition, source: lvis, tasks: [recognition], count: 100}
          - {name: vg-phrases, source: vg, fraction: 0.5, filters: {max_regions: 1}}
      - name: stage2
        entries:
          - {name: captions-again, source: stage1, tasks: [phrase_caption], count: 50}

An entry whose `source` names an earlier stage re-samples that stage's mix (PixelRefer's stage 2
re-uses stage-1 region captions): its candidates are the samples that stage selected, filtered by
the entry's subsets, tasks and filters like a source's, and ranked by the recipe seed.

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

BoxRegions = Literal["sam2", "box-mask", "drop"]  # a build's policy for box/point regions (see Recipe.box_regions)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Filters(_Model):
    """Conditions a sample must meet to be a candidate of an entry (all that are set)."""

    splits: list[str] | None = Field(default=None, description="Keep these `split` values only.")
    media_kind: Literal["image", "video", "none"] | None = Field(
        default=None, description="Keep images, videos, or text-only samples (`none`: no media) only."
    )
    prompts: list[Literal["mask", "box", "point"]] | None = Field(
        default=None, description="Keep samples whose every region has one of these prompt kinds."
    )
    max_regions: int | None = Field(default=None, ge=1, description="Keep samples with at most this many regions.")


class Entry(_Model):
    """A slice of one source or of an earlier stage's mix: its candidates (subsets x tasks x filters) and how many to take."""

    name: str = Field(pattern=_NAME, description="Unique in its stage; keys the selection hash and the report.")
    source: str = Field(description="Registry name of the source, or the name of an earlier stage to re-sample.")
    subsets: list[str] | None = Field(
        default=None, description="Subsets to draw from, as names or shell patterns (`*lvis*`); null means all."
    )
    tasks: list[Task] | None = Field(default=None, description="Tasks to draw from; null means all.")
    count: int | None = Field(default=None, ge=0, description="Samples to take (all there are when fewer).")
    fraction: float | None = Field(default=None, gt=0, le=1, description="Share of the candidates to take.")
    filters: Filters = Field(default_factory=Filters)
    note: str = Field(default="", description="Where the entry's count, subsets or filters come from.")

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
    box_regions: BoxRegions | None = Field(
        default=None, description="What the build does with box/point regions, which shards need as masks: SAM 2 masks, "
        "the box rasterised as the mask (mask_origin box), or drop their samples; `build --box-regions` overrides it."
    )
    stages: list[Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_stages(self) -> Recipe:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"recipe {self.name}: stage names must be unique, got {names}")
        for i, stage in enumerate(self.stages):
            for entry in stage.entries:
                if entry.source in names[i:]:  # its mix would not exist yet when this stage is mixed
                    raise ValueError(f"stage {stage.name}, entry {entry.name}: source {entry.source} is this stage or a "
                                     f"later one; an entry may re-sample only a stage listed before its own")
        return self

    @property
    def stage_names(self) -> set[str]:
        """The names an entry's `source` may take to re-sample a stage."""
        return {s.name for s in self.stages}

    @classmethod
    def from_yaml(cls, path: Path) -> Recipe:
        with open(path, encoding="utf-8") as f:  # from the file, so a YAML error names it
            return cls.model_validate(yaml.safe_load(f))
