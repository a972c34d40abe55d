"""The run log of rank 0: `log.jsonl` (one line per logged step) and, optionally, TensorBoard events.

    log = RunLog(output_dir, resumed_step, tensorboard=True)
    log.write({"step": 3, "loss": 2.1, "lr": {"llm": 1e-5}, ...})   # nested dicts become tag/name scalars
    log.close()

A resumed run continues the same files: JSONL lines past the resumed step (written after the last
checkpoint of a crashed run) are dropped, and TensorBoard is told to purge its events from there on.
"""

from __future__ import annotations

import json
from pathlib import Path

class RunLog:
    def __init__(self, out: Path, start: int, tensorboard: bool):
        self.path = out / "log.jsonl"
        _truncate(self.path, start)
        self.writer = None
        if tensorboard:
            # imported only when asked for: it pulls in protobuf and the tensorboard package
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=start + 1)

    def write(self, entry: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        if self.writer is not None:
            for tag, value in _scalars(entry):
                self.writer.add_scalar(tag, value, entry["step"])
            self.writer.flush()  # a crash loses no logged step

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _scalars(entry: dict, prefix: str = "") -> list[tuple[str, float]]:
    """`{"step": 3, "loss": 1, "lr": {"llm": 2}}` -> [("loss", 1), ("lr/llm", 2)] (the step is the x axis)."""
    out = []
    for key, value in entry.items():
        if key == "step":
            continue
        if isinstance(value, dict):
            out += _scalars(value, f"{prefix}{key}/")
        else:
            out.append((prefix + key, value))
    return out


def _truncate(log: Path, step: int) -> None:
    """Drop log lines past the resumed step (written after the last checkpoint of a crashed run)."""
    if log.is_file():
        lines = [line for line in log.read_text().splitlines() if json.loads(line)["step"] <= step]
        log.write_text("".join(line + "\n" for line in lines))
