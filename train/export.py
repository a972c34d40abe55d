"""Export a trained checkpoint in Hugging Face format, and load such an export back.

    pixelrefer train --config FILE --export-hf DIR      # train, then export the final checkpoint
    python -m train.export runs/x DIR                   # a run folder (its newest step) or a step_* folder
    model, tokenizer = load_hf(DIR)

DIR holds:
    llm/                     the language model (save_pretrained; LoRA adapters merged into its weights)
    vision/                  the vision tower (save_pretrained)
    tokenizer/               the tokenizer with the chat special tokens
    pixelrefer.safetensors   our own modules: projector, object encoder (and Lite's infusion)
    pixelrefer.yaml          the model config, `llm`/`vision`/`tokenizer` naming the folders above

Weights are written as trained (fp32 master weights).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import yaml
from safetensors.torch import load_file, save_file

from train import checkpoint
from train.config import ModelConfig, load_config
from train.lora import merged_llm
from train.model import RegionMLLM, build_model
from train.prepare import prepare_model
from train.tokenizer import load_tokenizer

OWN = "pixelrefer.safetensors"
CONFIG = "pixelrefer.yaml"
PARTS = ("llm", "vision", "tokenizer")
# Parameters saved by the Hugging Face parts; everything else is ours and goes to OWN.
HF_PREFIXES = ("llm.", "vision.")


def export_hf(folder: str | Path, out: str | Path) -> Path:
    """Write the checkpoint in `folder` (a run or step_* folder) to `out`; return `out`."""
    step, out = checkpoint.resolve(Path(folder)), Path(out)
    cfg = dataclasses.replace(load_config(step / "config.yaml"), init_from="")  # its weights are in model.pt
    if cfg.model.backbone != "siglip-qwen2":  # load_hf rebuilds the model from separate llm/ and vision/ folders
        raise NotImplementedError(f"{step}: HF export supports the siglip-qwen2 backbone, not {cfg.model.backbone}")
    tokenizer = load_tokenizer(cfg.model.tokenizer)
    model = prepare_model(cfg, tokenizer)
    model.load_state_dict(checkpoint.load_model_state(step))
    out.mkdir(parents=True, exist_ok=True)
    merged_llm(model).save_pretrained(out / "llm")
    model.vision.save_pretrained(out / "vision")
    tokenizer.save_pretrained(out / "tokenizer")
    own = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith(HF_PREFIXES)}
    save_file(own, out / OWN)
    model_cfg = dataclasses.asdict(cfg.model) | {part: part for part in PARTS} | {"gradient_checkpointing": False}
    (out / CONFIG).write_text(yaml.safe_dump(model_cfg, sort_keys=True))
    return out


def load_hf(folder: str | Path) -> tuple[RegionMLLM, object]:
    """(model in eval mode, tokenizer) from an `export_hf` folder; offline, as every local folder."""
    folder = Path(folder)
    tree = yaml.safe_load((folder / CONFIG).read_text())
    cfg = ModelConfig(**tree | {part: str(folder / tree[part]) for part in PARTS})
    tokenizer = load_tokenizer(cfg.tokenizer)
    model = build_model(cfg, tokenizer)
    missing, unexpected = model.load_state_dict(load_file(folder / OWN), strict=False)
    ours_missing = [k for k in missing if not k.startswith(HF_PREFIXES)]
    if ours_missing or unexpected:
        raise ValueError(f"{folder / OWN} does not fit the model: missing {ours_missing}, unexpected {unexpected}")
    return model.eval(), tokenizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a run folder (its newest complete step) or a step_* folder")
    parser.add_argument("out", help="folder to write the Hugging Face format export to")
    args = parser.parse_args(argv)
    print(f"exported to {export_hf(args.checkpoint, args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
