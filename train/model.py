"""PixelRefer models: the Vision-Object framework and the Object-Only framework (PixelRefer-Lite).

Both wrap a Hugging Face causal LM, vision tower and projector from a backbone
(`train.backbones`: `siglip-qwen2`, or `videollama3`, the paper's VideoLLaMA3-Image start; random
presets or local folders, never downloaded) and differ in what reaches the LLM:

* `pixelrefer` (Vision-Object): global frames -> vision tower -> mlp2x_gelu projector -> the
  `<image>` positions; each region frame's SAOT crop -> vision tower, + relative position
  encoding (Linear(2, D)), keep the masked grid cells, k-means them to the frame's token count
  (seeded, deterministic), 2-layer GELU MLP -> the `<REGION>` positions.
* `lite` (Object-Only): the same SAOT tokens zero-padded to n, then Object-Centric Infusion
  (local-view then global-view cross-attention, each LayerNorm + residual), then the MLP; the
  LLM sees no global tokens for samples with regions.

Features are scattered into the placeholder positions in order; a count mismatch raises.
When a batch has no regions (or no global images) the unused branch runs on a dummy input with
weight 0 so every trainable parameter gets a gradient and DDP never hangs.

    model = build_model(ModelConfig(), tokenizer)
    loss_sum, n_supervised = model(batch)
    embeds = model.embed(batch)          # the LLM's input embeddings, features scattered in (generation)
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn

from tokenization.chat import IGNORE_INDEX
from tokenization.saot_torch import saot_crop
from train.backbones import BACKBONES, Backbone, mlp
from train.config import ModelConfig
from train.data import RegionBatch
from train.released import load_released


def kmeans(x: torch.Tensor, k: int, iterations: int, seed: int) -> torch.Tensor:
    """k centroids of the rows of x, differentiable in x (assignments are fixed without grad).

    Initial centroids: k rows drawn by a CPU generator seeded with `seed`, so the result depends
    only on x; empty clusters keep their previous centroid; stops early when centroids settle.
    """
    init = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:k].to(x.device)
    with torch.no_grad():
        centroids = x[init].float()
        for _ in range(iterations):
            new = _centroids(x.float(), _assign(x.float(), centroids), centroids)
            settled = torch.allclose(new, centroids, atol=1e-6)
            centroids = new
            if settled:
                break
        assign = _assign(x.float(), centroids)
    return _centroids(x, assign, x[init])


def _assign(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x, centroids).argmin(dim=1)


def _centroids(x: torch.Tensor, assign: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    onehot = F.one_hot(assign, previous.shape[0]).to(x.dtype).T  # (k, N)
    counts = onehot.sum(dim=1, keepdim=True)
    means = onehot @ x / counts.clamp(min=1)
    return torch.where(counts > 0, means, previous.to(x.dtype))


class ObjectEncoder(nn.Module):
    """SAOT tokens of one region frame: pos-encoded masked cells, k-means to `count`, MLP to LLM width."""

    def __init__(self, d_vision: int, d_llm: int, n_tokens: int, kmeans_iterations: int, seed: int, pad: bool):
        super().__init__()
        self.pos = nn.Linear(2, d_vision)
        self.mlp = mlp(d_vision, d_llm)
        self.n_tokens, self.iterations, self.seed, self.pad = n_tokens, kmeans_iterations, seed, pad

    def tokens(self, feats: torch.Tensor, grid: torch.Tensor, pos: torch.Tensor, count: int) -> torch.Tensor:
        """(count, d_vision) tokens before the MLP; feats (cells, D), grid (gh, gw), pos (gh, gw, 2)."""
        x = feats + self.pos(pos.reshape(-1, 2).to(feats.dtype))
        cells = x[grid.reshape(-1) > 0]
        if count == 0:  # an object too small for one token renders as "[]"
            return cells[:0]
        if cells.shape[0] > count:
            cells = kmeans(cells, count, self.iterations, self.seed)
        if cells.shape[0] < count:
            if not self.pad:
                raise ValueError(f"{cells.shape[0]} masked grid cells for {count} object tokens: the shard's "
                                 "token count does not match its grid mask (rebuild the shard)")
            cells = torch.cat([cells, cells.new_zeros(count - cells.shape[0], cells.shape[1])])
        return cells


class ObjectInfusion(nn.Module):
    """Object-Centric Infusion: tokens attend to the local view, then to the global view."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.ln_local, self.ln_global = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn_local = nn.MultiheadAttention(d, heads, batch_first=True)
        self.attn_global = nn.MultiheadAttention(d, heads, batch_first=True)

    def forward(self, tokens: torch.Tensor, local: torch.Tensor, global_: torch.Tensor) -> torch.Tensor:
        q = tokens[None]
        q = q + self.attn_local(self.ln_local(q), local[None], local[None], need_weights=False)[0]
        q = q + self.attn_global(self.ln_global(q), global_[None], global_[None], need_weights=False)[0]
        return q[0]


class RegionMLLM(nn.Module):
    """Vision tower + projector + object encoder (+ infusion for Lite) + causal LM."""

    def __init__(self, backbone: Backbone, cfg: ModelConfig, image_id: int, region_id: int):
        super().__init__()
        self.cfg, self.image_id, self.region_id = cfg, image_id, region_id
        self.llm, self.vision, self.projector = backbone.llm, backbone.vision, backbone.projector
        self._features, self.video_merge = backbone.features, backbone.video_merge
        d_vision, d_llm = self.vision.config.hidden_size, self.llm.config.hidden_size
        lite = cfg.framework == "lite"
        self.object_encoder = ObjectEncoder(d_vision, d_llm, cfg.object_tokens, cfg.kmeans_iterations, cfg.seed, pad=lite)
        self.infusion = ObjectInfusion(d_vision, cfg.infusion_heads) if lite else None

    @property
    def patch(self) -> int:
        return self.vision.config.patch_size

    def encode_images(self, pixels: torch.Tensor, merge: int = 1) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> (N, cells, d_vision) tower features (no grad when frozen); `merge`
        2 gives one cell per 2x2 patches (VideoLLaMA3 video frames).

        Pixels arrive as uint8 (4x less host memory and transfer than floats) and are normalised
        here, on the model's device, with mean 0.5 and std 0.5 (SigLIP's and VideoLLaMA3's): x / 127.5 - 1."""
        if pixels.dtype != torch.uint8:
            raise TypeError(f"pixels must be uint8 RGB, got {pixels.dtype}")
        frozen = not any(p.requires_grad for p in self.vision.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            x = pixels.to(self._dtype) / 127.5 - 1.0
            return self._features(self.vision, x, merge, self.cfg.vision_select_layer)

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.vision.parameters()).dtype

    def frame_features(self, images: list[torch.Tensor], merges: list[int] | None = None) -> list[torch.Tensor]:
        """(cells, d_vision) features of every frame, in batch order; frames of one size and merge share a tower call."""
        merges = merges or [1] * len(images)
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, frames in enumerate(images):
            groups[(*frames.shape[1:], merges[i])].append(i)
        per_sample: list[torch.Tensor] = [torch.empty(0)] * len(images)
        for key, idx in groups.items():
            feats = self.encode_images(torch.cat([images[i] for i in idx]), merge=key[-1])
            for i, f in zip(idx, feats.split([images[i].shape[0] for i in idx])):
                per_sample[i] = f
        return [frame for feats in per_sample for frame in feats]

    def object_features(self, batch: RegionBatch, global_feats: list[torch.Tensor]) -> torch.Tensor:
        """(sum of token counts, d_llm) features of every region frame, in scatter order."""
        out = []
        for obj in batch.objects:
            resize_hw = (obj.grid.shape[0] * self.patch, obj.grid.shape[1] * self.patch)
            feats = self.encode_images(saot_crop(obj.crop, resize_hw)[None])[0]
            tokens = self.object_encoder.tokens(feats, obj.grid, obj.pos, obj.tokens)
            if self.infusion is not None:
                local = self.encode_images(obj.local[None])[0]
                tokens = self.infusion(tokens, local, global_feats[obj.frame])
            out.append(self.object_encoder.mlp(tokens))
        return torch.cat(out)

    def _dummy(self, d_vision: int) -> torch.Tensor:
        """A zero-weight pass through the object path and the projector (keeps DDP's reducer whole)."""
        z = torch.zeros(1, d_vision, device=self.llm.device, dtype=self._dtype)
        tokens = self.object_encoder.tokens(z, torch.ones(1, 1, device=z.device), torch.zeros(1, 1, 2, device=z.device), 1)
        if self.infusion is not None:
            tokens = self.infusion(tokens, z, z)
        return 0.0 * (self.object_encoder.mlp(tokens).sum() + self.projector(z).sum())

    def embed(self, batch: RegionBatch) -> torch.Tensor:
        """The LLM's input embeddings: token embeddings with image and object features scattered
        into the `<image>` and `<REGION>` positions (in order; a count mismatch raises)."""
        embeds = self.llm.get_input_embeddings()(batch.input_ids)
        global_feats = self.frame_features(batch.images, batch.merges)
        if batch.image_in_text.any():
            shown = [f for f, in_text in zip(global_feats, batch.image_in_text.tolist()) if in_text]
            image_feats = self.projector(torch.cat(shown))
            embeds = _scatter(embeds, batch.input_ids == self.image_id, image_feats, "<image>")
        if batch.objects:
            embeds = _scatter(embeds, batch.input_ids == self.region_id, self.object_features(batch, global_feats), "<REGION>")
        return embeds

    def forward(self, batch: RegionBatch) -> tuple[torch.Tensor, int]:
        """Summed next-token cross-entropy over supervised labels, and how many there were."""
        embeds = self.embed(batch)
        # a packed batch has no attention mask and per-sample position ids: transformers then masks across samples
        logits = self.llm(inputs_embeds=embeds, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                          use_cache=False).logits
        labels = batch.labels[:, 1:]
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
        return loss + self._dummy(self.vision.config.hidden_size), int((labels != IGNORE_INDEX).sum())


def _scatter(embeds: torch.Tensor, where: torch.Tensor, feats: torch.Tensor, token: str) -> torch.Tensor:
    """Put `feats` rows at the `where` positions, in order; fail loudly when the counts differ."""
    if int(where.sum()) != feats.shape[0]:
        raise ValueError(f"{int(where.sum())} {token} tokens in the batch but {feats.shape[0]} features: "
                         "the rendered text and the visual inputs disagree")
    return embeds.masked_scatter(where[..., None], feats.to(embeds.dtype))


def build_model(cfg: ModelConfig, tokenizer) -> RegionMLLM:
    """The only constructor: presets get random init (seeded by cfg.seed), folders load offline."""
    torch.manual_seed(cfg.seed)
    backbone = BACKBONES[cfg.backbone](cfg, len(tokenizer))
    llm = backbone.llm
    if llm.get_input_embeddings().num_embeddings < len(tokenizer):
        llm.resize_token_embeddings(len(tokenizer))  # the chat specials were added to a real tokenizer
    backbone.vision.requires_grad_(False)  # frozen in both stages of the recipe (vision_encoder_lr 0)
    if cfg.gradient_checkpointing:  # renamed in transformers 5 (the old name warns); 4.x has only the old one
        (getattr(llm, "activation_checkpointing_enable", None) or llm.gradient_checkpointing_enable)()
    vocab = tokenizer.get_vocab()
    model = RegionMLLM(backbone, cfg, vocab["<image>"], vocab["<REGION>"])
    if cfg.released:
        load_released(model, cfg.released)
    return model
