"""Chat messages in the OpenAI format, with images inlined as data URLs (no upload, no URL fetch)."""

from __future__ import annotations

import base64


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def system(text: str) -> dict:
    return {"role": "system", "content": text}


def user(text: str, images: list[bytes] = ()) -> dict:
    """A user turn: the text, then each PNG image as an `image_url` part."""
    if not images:
        return {"role": "user", "content": text}
    parts: list[dict] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": data_url(png)}} for png in images]
    return {"role": "user", "content": parts}
