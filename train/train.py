"""Train a PixelRefer model (Vision-Object or Lite) from shards or generated examples.

Run as:
    pixelrefer train --config train/configs/tiny.yaml [optim.steps=20 output_dir=runs/x ...]
    python -m train.train --config train/configs/tiny.yaml
    torchrun --standalone --nproc_per_node 2 -m train.train --config train/configs/tiny.yaml

One optimizer step = `accumulation` micro-batches per rank; the loss is the summed token
cross-entropy divided by the supervised tokens of the whole step (all micro-batches, all ranks),
so 1 x 4 and 4 x 1 give the same update. An existing run in `output_dir` is resumed from its
newest complete checkpoint (model, optimizer, scheduler, loader position): the loss curve is the
same as an uninterrupted run. Logs: `output_dir/log.jsonl` (one line per step), a progress bar.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm import tqdm

from tokenization.chat import RenderConfig
from train import checkpoint, dist
from train.config import TrainConfig, load_config, to_dict
from train.data import InMemory, Loader, RegionBatch, Views, encode_all
from train.model import RegionMLLM, build_model
from train.optim import cosine_schedule, freeze, param_groups
from train.shard_input import ShardSource
from train.synthetic import synthetic_examples
from train.tokenizer import load_tokenizer


def make_loader(cfg: TrainConfig, model: RegionMLLM, tokenizer, d: dist.Dist) -> Loader:
    """The rank's loader over shards (data.shards) or generated examples."""
    render_cfg = RenderConfig(layout=cfg.model.framework, max_length=cfg.data.max_length, lite_tokens=cfg.model.object_tokens)
    views = Views(cfg.data.image_size, cfg.data.local_size, model.patch, cfg.data.video_max_tokens)
    if cfg.data.shards:
        source = ShardSource(cfg.data.shards, tokenizer, render_cfg, views, cfg.data.shuffle_buffer)
    else:
        lite = cfg.model.framework == "lite"
        examples = synthetic_examples(cfg.data.synthetic, cfg.data.seed, cfg.data.image_size, cfg.model.object_tokens, lite)
        items, rejects = encode_all(examples, tokenizer, render_cfg, views)
        if rejects:
            print(f"generated examples rejected: {dict(rejects)}", file=sys.stderr)
        source = InMemory(items)
    return Loader(source, cfg.optim.micro_batch, d.rank, d.world, cfg.data.seed, tokenizer.pad_token_id)


def batch_stream(loader: Loader, workers: int) -> Iterator[RegionBatch]:
    """Batches from the loader's position on; with workers, a DataLoader keeps the same order."""
    if not workers:
        return loader.batches()
    dl = torch.utils.data.DataLoader(loader, batch_size=None, num_workers=workers, persistent_workers=False)

    def counted():
        for batch in dl:
            loader.consumed += 1
            yield batch

    return counted()


def _window(batches: Iterator[RegionBatch], accumulation: int, device: torch.device) -> list[RegionBatch]:
    return [next(batches).to(device) for _ in range(accumulation)]


def train(cfg: TrainConfig) -> list[float]:
    """Run (or resume) training; return the losses of the steps run by this call."""
    d = dist.init()
    out = Path(cfg.output_dir)
    tokenizer = load_tokenizer(cfg.model.tokenizer)
    model = build_model(cfg.model, tokenizer)
    freeze(model, cfg.optim.frozen)
    if cfg.init_from:
        model.load_state_dict(checkpoint.load_model_state(Path(cfg.init_from)))
    model.to(d.device)
    loader = make_loader(cfg, model, tokenizer, d)
    accumulation = cfg.accumulation(d.world)
    total = cfg.optim.steps or int(cfg.optim.epochs * loader.batches_per_epoch // accumulation)
    if total < 1:
        raise SystemExit(f"{len(loader.source)} samples give 0 optimizer steps at global_batch {cfg.optim.global_batch}: "
                         "lower optim.global_batch or set optim.steps")

    wrapped = dist.wrap(model, d, cfg.parallel)
    groups = param_groups(model, cfg.optim)  # after wrapping: FSDP2 swaps in sharded parameters
    opt = torch.optim.AdamW(groups, betas=cfg.optim.betas)
    sched = cosine_schedule(opt, total, cfg.optim.warmup_ratio)
    start, tokens_seen = 0, 0
    if (last := checkpoint.latest(out)) is not None:
        model_state, optim_state, meta = checkpoint.load(last)
        dist.load_full_state(wrapped, opt, model_state, optim_state["optimizer"], cfg.parallel, d)
        sched.load_state_dict(optim_state["scheduler"])
        loader.load_state_dict(meta["loader"])
        start, tokens_seen = meta["step"], meta["tokens"]
    log = out / "log.jsonl"
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        _truncate_log(log, start)
        print(f"training {cfg.model.framework}: {len(loader.source)} samples, "
              f"{total} steps x {accumulation} micro-batches of {cfg.optim.micro_batch} on {d.world} rank(s); "
              f"groups {[(g['name'], len(g['params']), g['lr']) for g in groups]}; resuming at step {start}",
              file=sys.stderr)

    bf16 = d.device.type == "cuda" and cfg.bf16
    batches = batch_stream(loader, cfg.data.workers)
    losses = []
    bar = tqdm(range(start, total), initial=start, total=total, disable=not d.main, desc="train")
    for step in bar:
        t0 = time.perf_counter()
        window = _window(batches, accumulation, d.device)
        n_tokens = dist.all_reduce_sum(sum(b.supervised for b in window), d)
        loss_sum = 0.0
        for k, batch in enumerate(window):
            autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else nullcontext()
            with dist.no_sync(wrapped, last=k == accumulation - 1), autocast:
                loss, _ = wrapped(batch)
                # DDP and FSDP average gradients over ranks: scale by world so the update is sum / n_tokens.
                (loss * d.world / max(n_tokens, 1)).backward()
            loss_sum += float(loss.detach())
        lrs = {g["name"]: g["lr"] for g in opt.param_groups}  # the rates this step used
        if cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step_loss = dist.all_reduce_sum(loss_sum, d) / max(n_tokens, 1)
        tokens_seen += int(n_tokens)
        losses.append(step_loss)
        if d.main and ((step + 1) % cfg.log_every == 0 or step + 1 == total):
            entry = {"step": step + 1, "loss": step_loss, "tokens": tokens_seen, "seconds": time.perf_counter() - t0,
                     "lr": lrs}
            with log.open("a") as f:
                f.write(json.dumps(entry) + "\n")
            bar.set_postfix(loss=f"{step_loss:.4f}")
        if step + 1 == total or (cfg.save_every and (step + 1) % cfg.save_every == 0):
            _save(out, step + 1, wrapped, opt, sched, loader, tokens_seen, cfg, d)
    if d.main:
        print(f"checkpoints: {out}/step_*  log: {log}", file=sys.stderr)
    dist.cleanup()
    return losses


def _truncate_log(log: Path, step: int) -> None:
    """Drop log lines past the resumed step (written after the last checkpoint of a crashed run)."""
    if log.is_file():
        lines = [line for line in log.read_text().splitlines() if json.loads(line)["step"] <= step]
        log.write_text("".join(line + "\n" for line in lines))


def _save(out: Path, step: int, model, opt, sched, loader: Loader, tokens: int, cfg: TrainConfig, d: dist.Dist) -> None:
    folder = checkpoint.step_dir(out, step)
    states = dist.full_state(model, opt, cfg.parallel, d)  # a collective under FSDP: every rank calls it
    if d.main:
        model_state, optim_state = states
        checkpoint.save(folder, model_state, {"optimizer": optim_state, "scheduler": sched.state_dict()}, to_dict(cfg))
        checkpoint.finish(folder, {"step": step, "tokens": tokens, "loader": loader.state_dict()})
    dist.barrier(d)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML training config (see train/configs/; tiny.yaml runs on CPU)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted overrides applied after the YAML, e.g. optim.steps=20 model.framework=lite")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, args.overrides)
    except (OSError, ValueError) as err:  # a missing file, a typo in a key, a bad value
        print(f"pixelrefer train: config {args.config}: {err}", file=sys.stderr)
        return 2
    train(cfg)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
