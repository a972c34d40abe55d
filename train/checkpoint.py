"""Checkpoints: `<output_dir>/step_NNNNNN/` with model, optimizer, scheduler, loader position, config.

    step_000010/model.pt       full model state dict (gathered on rank 0 under FSDP)
    step_000010/optim.pt       full optimizer + scheduler state (gathered on rank 0 under FSDP)
    step_000010/meta.json      step, loader position, supervised tokens seen, the data trained on
    step_000010/config.yaml    the resolved TrainConfig

A folder is complete once meta.json exists (written last), so a crash mid-save is ignored on resume.
meta.json's `data` is the shards' identity (`data_identity`: the sha256 of their index.json); a
resume on other shards is refused unless allowed (`check_same_data`), since the loader position
and the schedule of the checkpoint mean nothing on other data.
"""

from __future__ import annotations

import hashlib
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


def resolve(folder: Path) -> Path:
    """A step_* folder as is, or the newest complete step of a run folder."""
    if (folder / "model.pt").is_file():
        return folder
    newest = latest(folder)
    if newest is None:
        raise FileNotFoundError(f"{folder} holds no model.pt and no complete step_* checkpoint: "
                                "point at a finished run (e.g. stage 1's output_dir) or one of its step_* folders")
    return newest


def load_model_state(folder: Path) -> dict:
    """Model weights of a step_* folder, or of the newest complete step of a run folder."""
    return torch.load(resolve(folder) / "model.pt", map_location="cpu", weights_only=True)


def load(folder: Path) -> tuple[dict, dict, dict]:
    """(model state, optimizer+scheduler state, meta) of a complete checkpoint."""
    optim = torch.load(folder / "optim.pt", map_location="cpu", weights_only=True)
    meta = json.loads((folder / COMPLETE).read_text())
    return load_model_state(folder), optim, meta


class DataChanged(Exception):
    """A resume on other shards than the checkpoint was trained on."""


def data_identity(shards: str) -> dict | None:
    """{"shards", "index_sha256"} of a shard folder (None for generated examples)."""
    if not shards:
        return None
    index = Path(shards) / "index.json"
    digest = hashlib.sha256(index.read_bytes()).hexdigest() if index.is_file() else None
    return {"shards": str(shards), "index_sha256": digest}


def check_same_data(folder: Path, meta: dict, current: dict | None, allow: bool) -> None:
    """Raise DataChanged when the checkpoint in `folder` was trained on other shards, unless `allow`."""
    recorded = meta.get("data")
    if allow or recorded is None or recorded == current:
        return
    was = recorded["index_sha256"] if recorded else "generated examples"
    now = current["index_sha256"] if current else "generated examples"
    if was == now:  # the same shards, moved: the data is the same
        return
    raise DataChanged(f"{folder} was trained on shards with index.json sha256 {was} ({recorded and recorded['shards']}), "
                      f"but data.shards now has {now} ({current and current['shards']}): the data changed since. "
                      "Resume anyway with --allow-data-change (or resume_allow_data_change: true), or use a new output_dir")
