"""Checkpoints: `<output_dir>/step_NNNNNN/` with model, optimizer, scheduler, loader position, config.

    step_000010/model.pt       full model state dict (gathered on rank 0 under FSDP)
    step_000010/optim.pt       full optimizer + scheduler state (gathered on rank 0 under FSDP)
    step_000010/meta.json      step, loader position, supervised tokens seen
    step_000010/config.yaml    the resolved TrainConfig

A folder is complete once meta.json exists (written last), so a crash mid-save is ignored on resume.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import yaml

COMPLETE = "meta.json"


def step_dir(output_dir: Path, step: int) -> Path:
    return output_dir / f"step_{step:06d}"


def latest(output_dir: Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    done = sorted(p for p in output_dir.glob("step_*") if (p / COMPLETE).is_file())
    return done[-1] if done else None


def _save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save(folder: Path, model_state: dict, optim_state: dict, config: dict) -> None:
    """Write the model, optimizer and config (rank 0); `finish` marks the checkpoint complete."""
    folder.mkdir(parents=True, exist_ok=True)
    _save(optim_state, folder / "optim.pt")
    _save(model_state, folder / "model.pt")
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=True))


def finish(folder: Path, meta: dict) -> None:
    """Mark the checkpoint complete: meta.json is written last, after the tensors."""
    tmp = folder / (COMPLETE + ".tmp")
    tmp.write_text(json.dumps(meta, sort_keys=True, indent=1) + "\n")
    os.replace(tmp, folder / COMPLETE)


def load_model_state(folder: Path) -> dict:
    """Model weights of a step_* folder, or of the newest complete step of a run folder."""
    if not (folder / "model.pt").is_file():
        newest = latest(folder)
        if newest is None:
            raise FileNotFoundError(f"{folder} holds no model.pt and no complete step_* checkpoint: "
                                    "point init_from at a finished run (e.g. stage 1's output_dir)")
        folder = newest
    return torch.load(folder / "model.pt", map_location="cpu", weights_only=True)


def load(folder: Path) -> tuple[dict, dict, dict]:
    """(model state, optimizer+scheduler state, meta) of a complete checkpoint."""
    optim = torch.load(folder / "optim.pt", map_location="cpu", weights_only=True)
    meta = json.loads((folder / COMPLETE).read_text())
    return load_model_state(folder), optim, meta
