"""Token estimates for the tokens-per-minute limiter: text by its length, images by their pixel size.

The limiter debits an estimate before a request is sent and corrects it with the usage the
server reports afterwards, so the estimate only has to be close, never exact:

* text: characters of the JSON-rendered messages (images left out) / 4;
* an image: ceil(h / patch) * ceil(w / patch) + overhead. With patch 28 and overhead 2 this is
  Qwen2-VL / Qwen2.5-VL (14-px patches merged 2x2 into one token per 28x28 pixels, wrapped in
  <|vision_start|> <|vision_end|>). Other endpoints count differently (OpenAI charges 85 + 170
  per 512-px tile), hence `LLMConfig.image_patch_px` and `image_overhead_tokens`;
* plus the completion limit (`max_tokens`), which the server may use in full.

The size is read from the image header (PIL opens lazily); the pixels are never decoded.
"""

from __future__ import annotations

import base64
import io
import json
import math

from PIL import Image

from pipelines.llm.cache import DATA_URL


def image_size(payload: str) -> tuple[int, int]:
    """(width, height) of a base64 image payload, from its header."""
    with Image.open(io.BytesIO(base64.b64decode(payload))) as image:
        return image.size


def image_tokens(width: int, height: int, patch_px: int, overhead: int) -> int:
    return math.ceil(height / patch_px) * math.ceil(width / patch_px) + overhead


def estimate_tokens(messages: list[dict], max_tokens: int, patch_px: int, overhead: int) -> int:
    """Prompt text + images + the completion limit, for one request of `messages`."""
    rendered = json.dumps(messages)
    images = sum(image_tokens(*image_size(m.group(1)), patch_px, overhead) for m in DATA_URL.finditer(rendered))
    text = len(DATA_URL.sub("", rendered)) // 4
    return text + images + max_tokens
