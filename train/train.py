"""Train a PixelRefer model (Vision-Object or Lite) from shards or generated examples.

Run as:
    pixelrefer train --config train/configs/tiny.yaml [optim.steps=20 output_dir=runs/x ...]
    python -m train.train --config train/configs/tiny.yaml
    torchrun --standalone --nproc_per_node 2 -m train.train --config train/configs/tiny.yaml

One optimizer step = `accumulation` micro-batches per rank; the loss is the summed token
cross-entropy divided by the supervised tokens of the whole step (all micro-batches, all ranks),
so 1 x 4 and 4 x 1 give the same update. An existing run in `output_dir` is resumed from its
newest complete checkpoint (model, optimizer, scheduler, loader position): the loss curve is the
same as an uninterrupted run. Logs: `output_dir/log.jsonl` (one line per step: loss, supervised
tokens, tokens/s, learning rates, validation loss, `skipped`: samples the loaders of all ranks
left out so far, by reason), optionally TensorBoard events, a progress bar.
Weights train in fp32 (bf16 autocast on CUDA). `--export-hf DIR` writes the final model in Hugging
Face format (train/export.py).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import nullcontext
from itertools import islice
from pathlib import Path

import torch
from tqdm import tqdm

from tokenization.chat import RenderConfig
from train import checkpoint, dist
from train.config import TrainConfig, load_config, to_dict
from train.data import InMemory, Loader, RegionBatch, Views, encode_all
from train.export import export_hf
from train.metrics import RunLog
from train.model import RegionMLLM
from train.optim import cosine_schedule, param_groups
from train.prepare import prepare_model
from train.shard_input import ShardSource
from train.synthetic import synthetic_examples
from train.tokenizer import load_tokenizer


def make_loader(cfg: TrainConfig, model: RegionMLLM, tokenizer, d: dist.Dist, shards: str | None = None,
                workers: int = 0) -> Loader:
    """The rank's loader over shards (`shards`, default data.shards) or generated examples, read by
    `workers` DataLoader workers (0: in this process)."""
    shards = cfg.data.shards if shards is None else shards
    render_cfg = RenderConfig(layout=cfg.model.framework, max_length=cfg.data.max_length, lite_tokens=cfg.model.object_tokens)
    views = Views(cfg.data.image_size, cfg.data.local_size, model.patch, cfg.data.video_max_tokens, model.video_merge)
    if shards:
        source = ShardSource(shards, tokenizer, render_cfg, views, cfg.data.shuffle_buffer)
    else:
        lite = cfg.model.framework == "lite"
        examples = synthetic_examples(cfg.data.synthetic, cfg.data.seed, cfg.data.image_size, cfg.model.object_tokens, lite)
        items, rejects = encode_all(examples, tokenizer, render_cfg, views)
        if rejects:
            print(f"generated examples rejected: {dict(rejects)}", file=sys.stderr)
        source = InMemory(items)
    return Loader(source, cfg.optim.micro_batch, d.rank, d.world, cfg.data.seed, tokenizer.pad_token_id, cfg.data.pack, workers)


def batch_stream(loader: Loader, workers: int) -> Iterator[RegionBatch]:
    """Batches from the loader's position on; with workers, a DataLoader keeps the same order."""
    if not workers:
        return loader.batches()
    dl = torch.utils.data.DataLoader(loader, batch_size=None, num_workers=workers, persistent_workers=False)

    def counted():
        for batch in dl:
            loader.consume(batch)
            yield batch

    return counted()


def _window(batches: Iterator[RegionBatch], accumulation: int, device: torch.device) -> list[RegionBatch]:
    return [next(batches).to(device) for _ in range(accumulation)]


def _autocast(bf16: bool):
    return torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else nullcontext()


def validate(model: torch.nn.Module, loader: Loader, batches: int, bf16: bool, d: dist.Dist) -> float:
    """Token-mean loss over the first `batches` micro-batches per rank (0: one epoch) of the validation
    order, all ranks together; the same batches every time (the loader stays at position 0)."""
    model.eval()
    loss_sum, n_tokens = 0.0, 0
    batches = min(batches or loader.batches_per_epoch, loader.batches_per_epoch)
    with torch.no_grad(), _autocast(bf16):
        for batch in islice(iter(loader), batches):
            loss, n = model(batch.to(d.device))
            loss_sum, n_tokens = loss_sum + float(loss), n_tokens + n
    model.train()
    loss_sum, n_tokens = dist.all_reduce_sum([loss_sum, n_tokens], d)
    return loss_sum / max(n_tokens, 1)


def train(cfg: TrainConfig, export_to: str | None = None) -> list[float]:
    """Run (or resume) training, then export the final checkpoint to `export_to` in Hugging Face
    format if given; return the losses of the steps run by this call."""
    d = dist.init()
    losses = _run(cfg, export_to, d)
    # The run's wrapped model and optimizer sit in reference cycles that can hold gloo work objects
    # with tensors; collected during interpreter exit they abort the process (SIGABRT after a
    # finished run, pytorch/pytorch#179291). Collect them while the interpreter is whole.
    gc.collect()
    dist.cleanup()
    return losses


def _run(cfg: TrainConfig, export_to: str | None, d: dist.Dist) -> list[float]:
    out = Path(cfg.output_dir)
    tokenizer = load_tokenizer(cfg.model.tokenizer)
    model = prepare_model(cfg, tokenizer)
    model.to(d.device)
    loader = make_loader(cfg, model, tokenizer, d, workers=cfg.data.workers)
    val_loader = make_loader(cfg, model, tokenizer, d, cfg.data.val_shards) if cfg.data.val_shards else None
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
    data = checkpoint.data_identity(cfg.data.shards)
    if (last := checkpoint.latest(out)) is not None:
        model_state, optim_state, meta = checkpoint.load(last)
        checkpoint.check_same_data(last, meta, data, cfg.resume_allow_data_change)
        dist.load_full_state(wrapped, opt, model_state, optim_state["optimizer"], cfg.parallel, d)
        sched.load_state_dict(optim_state["scheduler"])
        loader.load_state_dict(meta["loader"])
        if d.main:  # the saved counts are all ranks' sum: one rank carries them on
            loader.skipped.update(meta.get("skipped", {}))
        start, tokens_seen = meta["step"], meta["tokens"]
    log = None
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        log = RunLog(out, start, cfg.log.tensorboard)
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
        # Randomness (LoRA dropout) from a per-step, per-rank seed: a resumed run draws what the
        # uninterrupted one drew, with no RNG state in the checkpoint.
        torch.manual_seed((cfg.model.seed * 1_000_003 + step) * d.world + d.rank)
        window = _window(batches, accumulation, d.device)
        n_tokens, n_input = dist.all_reduce_sum([sum(b.supervised for b in window), sum(b.tokens for b in window)], d)
        loss_sum = 0.0
        for k, batch in enumerate(window):
            with dist.no_sync(wrapped, last=k == accumulation - 1), _autocast(bf16):
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
        step_loss = dist.all_reduce_sum([loss_sum], d)[0] / max(n_tokens, 1)
        seconds = time.perf_counter() - t0
        tokens_seen += int(n_tokens)
        losses.append(step_loss)
        final = step + 1 == total
        entry = {"step": step + 1, "loss": step_loss, "supervised": int(n_tokens), "tokens": tokens_seen,
                 "tokens_per_s": n_input / seconds, "seconds": seconds, "lr": lrs}
        if val_loader is not None and (final or (cfg.val_every and (step + 1) % cfg.val_every == 0)):
            entry["val_loss"] = validate(wrapped, val_loader, cfg.data.val_batches, bf16, d)  # every rank takes part
        if (step + 1) % cfg.log_every == 0 or final or "val_loss" in entry:
            entry["skipped"] = skipped_counts(loader, d)  # a collective: every rank calls it
            if log is not None:
                log.write(entry)
                bar.set_postfix(loss=f"{step_loss:.4f}")
        if final or (cfg.save_every and (step + 1) % cfg.save_every == 0):
            _save(out, step + 1, wrapped, opt, sched, loader, tokens_seen, cfg, d, data)
    if log is not None:
        log.close()
        print(f"checkpoints: {out}/step_*  log: {log.path}", file=sys.stderr)
        if export_to:  # from the final checkpoint, which holds the full state under FSDP too
            print(f"exported to {export_hf(out, export_to)}", file=sys.stderr)
    return losses


def skipped_counts(loader: Loader, d: dist.Dist) -> dict[str, int]:
    """Samples the loaders of all ranks skipped so far, by reason (a collective: every rank calls it)."""
    mine = dict(loader.skipped)
    counts = [mine]
    if d.world > 1:
        counts = [None] * d.world
        torch.distributed.all_gather_object(counts, mine)
    return dict(sorted(sum(map(Counter, counts), Counter()).items()))


def _save(out: Path, step: int, model, opt, sched, loader: Loader, tokens: int, cfg: TrainConfig, d: dist.Dist,
          data: dict | None) -> None:
    folder = checkpoint.step_dir(out, step)
    states = dist.full_state(model, opt, cfg.parallel, d)  # a collective under FSDP: every rank calls it
    skipped = skipped_counts(loader, d)
    if d.main:
        model_state, optim_state = states
        checkpoint.save(folder, model_state, {"optimizer": optim_state, "scheduler": sched.state_dict()}, to_dict(cfg))
        checkpoint.finish(folder, {"step": step, "tokens": tokens, "loader": loader.state_dict(), "data": data,
                                   "skipped": skipped})
    dist.barrier(d)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML training config (see train/configs/; tiny.yaml runs on CPU)")
    parser.add_argument("--allow-data-change", action="store_true",
                        help="Resume even if data.shards changed since the checkpoint (same as resume_allow_data_change=true).")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted overrides applied after the YAML, e.g. optim.steps=20 model.framework=lite")
    parser.add_argument("--export-hf", metavar="DIR",
                        help="after training, write the final model in Hugging Face format to DIR (train/export.py)")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, [*args.overrides, *(["resume_allow_data_change=true"] if args.allow_data_change else [])])
    except (OSError, ValueError) as err:  # a missing file, a typo in a key, a bad value
        print(f"pixelrefer train: config {args.config}: {err}", file=sys.stderr)
        return 2
    try:
        train(cfg, args.export_hf)
    except checkpoint.DataChanged as err:
        print(f"pixelrefer train: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
