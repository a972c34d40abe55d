"""Chat rendering: one `Sample` -> `(input_ids, labels)` with image, video-frame and object tokens.

The template is Qwen-style ChatML, one message at a time (as VideoLLaMA3's processor does):

    <|im_start|>{role}\\n{content}<|im_end|>\\n

Visual tokens (all real special tokens; their embeddings are replaced by features in the model):

* global image: `<image>` x N at the start of the first user turn, then `\\n`;
  a video: `Time {t:.1f}s:` + `<image>` x N_f per sampled frame, joined by `,`, then `\\n`;
  a text-only sample (`media` None, no regions): no visual tokens, the plain chat template.
* object `<obj{i}>`: its first mention renders as the text `<obj{i}>` followed by its token group;
  later mentions stay the plain text `<obj{i}>` (a name the answer can use, like the official
  `<region0><region>` prompts). Groups per layout:
  - `pixelrefer`: `[` + `<REGION>` x c + `]` for each region frame, c = the SAOT token count;
  - `lite`: images `[` + `<REGION>` x n + `]`; videos `[Time {t:.1f}:<REGION>x n,Time ...]`, one
    entry per annotated region frame; no global `<image>` tokens when the sample has regions.

Labels are `IGNORE_INDEX` except assistant content and its `<|im_end|>`; visual tokens inside an
assistant turn are never supervised. Text between special tokens is encoded on its own with
`add_special_tokens=False`, so any Hugging Face tokenizer works.

Truncation never cuts a turn (so never an object-token group): trailing user/assistant rounds are
dropped while the kept rounds still mention every region; a sample that still does not fit is
rejected (`schemas.Reject`, reason `too_long`).

Example:
    >>> add_special_tokens(tokenizer)
    >>> out = render(sample, VisualTokens(frame_tokens=[16], region_tokens=[[7]]), tokenizer)
    >>> out.input_ids, out.labels, out.region_order
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Literal

from schemas import Media, Reject, Sample, placeholders

IGNORE_INDEX = -100
IM_START, IM_END, IMAGE, REGION = "<|im_start|>", "<|im_end|>", "<image>", "<REGION>"
PAD = "<|endoftext|>"
SPECIAL_TOKENS = (IM_START, IM_END, IMAGE, REGION)
FRAME_FOLDER_FPS = 3.0  # the official loader's assumption for frame folders without timestamps

Layout = Literal["pixelrefer", "lite"]

# Reject reasons of the renderer (on top of schemas.REASONS).
REASONS: dict[str, str] = {
    "too_long": "the rendered sample exceeds max_length even with trailing rounds dropped",
    "token_count_mismatch": "the visual token counts do not match the sample's frames or regions",
}


@dataclass(frozen=True)
class RenderConfig:
    """How samples become tokens."""

    layout: Layout = "pixelrefer"
    """`pixelrefer` (global image + SAOT groups) or `lite` (object tokens only, fixed n per frame)."""
    max_length: int = 16384
    """Longest rendered sample in tokens (the official model_max_length)."""
    lite_tokens: int = 32
    """n: tokens per region frame in the Lite layout (the official mask_num)."""


@dataclass(frozen=True)
class VisualTokens:
    """How many visual tokens the model will produce for one sample (from the shard metadata)."""

    frame_tokens: list[int] = field(default_factory=list)
    """Global tokens per global frame: one entry for an image, one per sampled frame for a video."""
    frame_times: list[float] = field(default_factory=list)
    """Seconds of each sampled video frame (empty for images)."""
    region_tokens: list[list[int]] = field(default_factory=list)
    """Per region, per region frame: the SAOT token count (tokenization.saot); unused by Lite."""


@dataclass
class Rendered:
    input_ids: list[int]
    labels: list[int]
    region_order: list[int]
    """Region indices in the order their token groups appear (features are scattered in this order)."""
    turns_kept: int
    """Conversation turns rendered (fewer than the sample's when trailing rounds were dropped)."""


def add_special_tokens(tokenizer) -> int:
    """Register the chat and visual special tokens (and a pad token); return how many ids were added."""
    missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
    added = tokenizer.add_special_tokens({"additional_special_tokens": missing}) if missing else 0
    if tokenizer.pad_token is None:
        added += tokenizer.add_special_tokens({"pad_token": PAD})
    return added


def frame_time(media: Media, frame: int) -> float:
    """Seconds of frame `frame`: its timestamp, else frame / fps (3 fps for frame folders)."""
    if media.timestamps:
        return media.timestamps[frame]
    return frame / (media.fps or FRAME_FOLDER_FPS)


class _Encoder:
    """Encodes text and special-token runs with one tokenizer.

    Short pieces (role headers, brackets, separators, frame times) recur in every sample; their
    ids are memoised, since a tokenizer call costs tens of microseconds of Python overhead."""

    MEMO_CHARS, MEMO_SIZE = 24, 65536

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        vocab = tokenizer.get_vocab()
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise ValueError(f"tokenizer lacks {missing}: call tokenization.chat.add_special_tokens(tokenizer) first")
        self.special = {t: vocab[t] for t in SPECIAL_TOKENS}
        self.memo: dict[str, tuple[int, ...]] = {}

    def text(self, text: str) -> list[int]:
        if not text:
            return []
        ids = self.memo.get(text)
        if ids is None:
            ids = tuple(self.tokenizer.encode(text, add_special_tokens=False))
            if len(text) <= self.MEMO_CHARS and len(self.memo) < self.MEMO_SIZE:
                self.memo[text] = ids
        return list(ids)

    def run(self, token: str, count: int) -> list[int]:
        return [self.special[token]] * count


_ENCODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _encoder(tokenizer) -> _Encoder:
    """The tokenizer's encoder, kept while the tokenizer lives (so its memo serves every sample)."""
    enc = _ENCODERS.get(tokenizer)
    if enc is None:
        enc = _ENCODERS[tokenizer] = _Encoder(tokenizer)
    return enc


def _global_header(enc: _Encoder, media: Media, visual: VisualTokens) -> list[int]:
    if media.kind == "image":
        return enc.run(IMAGE, visual.frame_tokens[0]) + enc.text("\n")
    ids: list[int] = []
    for k, (t, n) in enumerate(zip(visual.frame_times, visual.frame_tokens)):
        last = k == len(visual.frame_tokens) - 1
        ids += enc.text(f"Time {t:.1f}s:") + enc.run(IMAGE, n) + enc.text("\n" if last else ",")
    return ids


def _region_group(enc: _Encoder, sample: Sample, visual: VisualTokens, index: int, cfg: RenderConfig) -> list[int]:
    region = sample.regions[index]
    if cfg.layout == "pixelrefer":
        ids: list[int] = []
        for count in visual.region_tokens[index]:
            ids += enc.text("[") + enc.run(REGION, count) + enc.text("]")
        return ids
    if sample.media.kind == "image":
        return enc.text("[") + enc.run(REGION, cfg.lite_tokens) + enc.text("]")
    ids = enc.text("[")
    for k, rf in enumerate(region.frames):
        ids += enc.text(("," if k else "") + f"Time {frame_time(sample.media, rf.frame):.1f}:")
        ids += enc.run(REGION, cfg.lite_tokens)
    return ids + enc.text("]")


def _check_counts(sample: Sample, visual: VisualTokens, cfg: RenderConfig, global_tokens: bool) -> None:
    problems = []
    if sample.media is None and visual.frame_tokens:
        problems.append(f"{len(visual.frame_tokens)} global frame counts for a text-only sample")
    if global_tokens:
        wanted = 1 if sample.media.kind == "image" else len(visual.frame_tokens)
        if not visual.frame_tokens or len(visual.frame_tokens) != wanted:
            problems.append(f"{len(visual.frame_tokens)} global frame counts for a {sample.media.kind}")
        if sample.media.kind == "video" and len(visual.frame_times) != len(visual.frame_tokens):
            problems.append(f"{len(visual.frame_times)} frame times for {len(visual.frame_tokens)} frames")
    if cfg.layout == "pixelrefer":
        have = [len(c) for c in visual.region_tokens]
        want = [len(r.frames) for r in sample.regions]
        if have != want:
            problems.append(f"region token counts per region {have}, region frames {want}")
    if problems:
        raise Reject("token_count_mismatch", "; ".join(problems), sample.id)


def render(sample: Sample, visual: VisualTokens, tokenizer, cfg: RenderConfig = RenderConfig()) -> Rendered:
    """Render a validated sample; raise `Reject` (too_long, token_count_mismatch) when it cannot be."""
    enc = _encoder(tokenizer)
    # A text-only sample (no media) renders as the plain chat template: no global header.
    global_tokens = sample.media is not None and (cfg.layout == "pixelrefer" or not sample.regions)
    _check_counts(sample, visual, cfg, global_tokens)
    turns: list[tuple[list[int], list[int]]] = []
    mentioned: list[int] = []  # region order of first mention
    mention_turn: dict[int, int] = {}
    first_user = True
    for t, turn in enumerate(sample.conversation):
        content: list[int] = []
        if turn.role == "user" and first_user:
            first_user = False
            if global_tokens:
                content += _global_header(enc, sample.media, visual)
        for piece in placeholders.split(turn.text):
            if isinstance(piece, str):
                content += enc.text(piece)
                continue
            content += enc.text(placeholders.obj(piece))
            if piece not in mention_turn:
                mention_turn[piece] = t
                mentioned.append(piece)
                content += _region_group(enc, sample, visual, piece, cfg)
        header = [enc.special[IM_START]] + enc.text(f"{turn.role}\n")
        ids = header + content + [enc.special[IM_END]] + enc.text("\n")
        if turn.role == "assistant":
            visual_ids = {enc.special[IMAGE], enc.special[REGION]}
            supervised = [IGNORE_INDEX if i in visual_ids else i for i in content] + [enc.special[IM_END]]
            labels = [IGNORE_INDEX] * len(header) + supervised + [IGNORE_INDEX] * (len(ids) - len(header) - len(supervised))
        else:
            labels = [IGNORE_INDEX] * len(ids)
        turns.append((ids, labels))
    kept = _fit(sample, turns, mention_turn, cfg.max_length)
    input_ids = [i for ids, _ in turns[:kept] for i in ids]
    labels = [i for _, lab in turns[:kept] for i in lab]
    return Rendered(input_ids, labels, [r for r in mentioned if mention_turn[r] < kept], kept)


def _fit(sample: Sample, turns: list[tuple[list[int], list[int]]], mention_turn: dict[int, int], max_length: int) -> int:
    """How many turns to keep: drop trailing user/assistant rounds until the sample fits."""
    lengths = [len(ids) for ids, _ in turns]
    kept = len(turns)
    first_answer = next(i for i, t in enumerate(sample.conversation) if t.role == "assistant")
    last_mention = max(mention_turn.values(), default=0)
    while sum(lengths[:kept]) > max_length and kept - 2 > max(first_answer, last_mention):
        kept -= 2
    if sum(lengths[:kept]) > max_length:
        raise Reject(
            "too_long",
            f"{sum(lengths[:kept])} tokens in {kept} turns > max_length {max_length}; raise max_length "
            "or lower the visual token budget (fewer frames, smaller images)",
            sample.id,
        )
    return kept
