"""Decode untrusted image bytes to 8-bit RGB, with a named error instead of a crash or a bomb.

    >>> rgb = decode_rgb(data, MAX_PIXELS)      # uint8 (H, W, 3), or ImageDecodeError
    >>> err.reason                              # 'image_unreadable' | 'image_too_large'

Modes become RGB as the official loader's `Image.open(...).convert("RGB")` makes them (grey,
palette, CMYK; alpha dropped), except 16-bit grey, which PIL's conversion clips at 255: it keeps
the high byte instead. The pixel count is checked from the header, before any pixel is decoded.
`portable(data)` says whether the bytes read as the same 8-bit RGB in any decoder (torchvision's
included), so that a writer may store them as they are.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # PIL's own decompression-bomb threshold (~89.5 M pixels)
_PNG_BIT_DEPTH = 24  # byte offset of the bit depth in a PNG's IHDR chunk (after signature, length, type, w, h)


class ImageDecodeError(ValueError):
    """Image bytes that cannot become an RGB frame; `reason` is the reject reason to record."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _open(data: bytes) -> Image.Image:
    """The lazily opened image: its header is read, no pixel yet."""
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:  # PIL's own refusal (over twice its limit)
        raise ImageDecodeError("image_too_large", str(err)) from None
    except UnidentifiedImageError:  # its message holds an object address: keep rejects reproducible
        raise ImageDecodeError("image_unreadable", "not an image in a format PIL reads") from None
    except OSError as err:
        raise ImageDecodeError("image_unreadable", f"{type(err).__name__}: {err}") from None


def decode_rgb(data: bytes, max_pixels: int) -> np.ndarray:
    """Encoded image bytes -> uint8 (H, W, 3); ImageDecodeError for truncated, corrupt or huge images."""
    with _open(data) as image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageDecodeError("image_too_large", f"{width}x{height} = {width * height} pixels, more than {max_pixels}")
        try:
            image.load()
            if image.mode.startswith("I;16"):  # 16-bit grey: scale to 8 bits (PIL's convert would clip)
                grey = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
                return np.repeat(grey[:, :, None], 3, axis=2)
            return np.array(image.convert("RGB"))
        except (OSError, ValueError) as err:  # what PIL's decoders raise on bad data (fuzzed)
            raise ImageDecodeError("image_unreadable", f"{type(err).__name__}: {err}") from None


def portable(data: bytes) -> bool:
    """True for an 8-bit grey or RGB JPEG or PNG (no palette, alpha, CMYK or 16 bits): bytes that
    every decoder reads as the same RGB. Reads the header only."""
    with _open(data) as image:
        if image.mode not in ("RGB", "L"):
            return False
        # PIL reports a 16-bit RGB PNG as "RGB"; torchvision would decode it to uint16
        return image.format == "JPEG" or (image.format == "PNG" and data[_PNG_BIT_DEPTH] == 8)
