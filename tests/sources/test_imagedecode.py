"""Image bytes -> 8-bit RGB (sources/imagedecode.py): modes, truncation, decompression bombs."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from sources.imagedecode import MAX_PIXELS, ImageDecodeError, decode_rgb, portable


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def png(width: int, height: int, depth: int, colour: int, idat: bytes) -> bytes:
    """A PNG built chunk by chunk (IHDR, one IDAT, IEND)."""
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)), (b"IDAT", idat), (b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(struct.pack(">I", len(c)) + t + c + struct.pack(">I", zlib.crc32(t + c)) for t, c in chunks)


def png_header_only(width: int, height: int) -> bytes:
    """A grey PNG that declares its size and holds no pixel data: only a header check can refuse it."""
    return png(width, height, 8, 0, zlib.compress(b""))


def test_16_bit_grey_is_scaled_to_8_bits_not_clipped():
    values = np.array([[0, 255, 256, 500], [32767, 32768, 65280, 65535]], dtype=np.uint16)
    data = encoded(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    rgb = decode_rgb(data, MAX_PIXELS)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 4, 3)
    assert rgb[..., 0].tolist() == [[0, 0, 1, 1], [127, 128, 255, 255]]
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()


@pytest.mark.parametrize("image, fmt, params, pixel", [
    (Image.new("L", (3, 2), 77), "PNG", {}, (77, 77, 77)),
    (Image.new("LA", (3, 2), (100, 0)), "PNG", {}, (100, 100, 100)),  # alpha dropped, as convert("RGB") does
    (Image.new("RGBA", (3, 2), (10, 20, 30, 0)), "PNG", {}, (10, 20, 30)),
])
def test_grey_and_alpha_modes_become_rgb(image, fmt, params, pixel):
    rgb = decode_rgb(encoded(image, fmt, **params), MAX_PIXELS)
    assert rgb.shape == (2, 3, 3) and {tuple(p) for p in rgb.reshape(-1, 3).tolist()} == {pixel}


def test_palette_with_transparency_uses_the_palette_colours():
    image = Image.new("P", (2, 2), 1)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    image.putpixel((0, 0), 0)
    data = encoded(image, "PNG", transparency=1)  # colour 1 is transparent
    assert Image.open(io.BytesIO(data)).info["transparency"] == 1
    assert decode_rgb(data, MAX_PIXELS).tolist() == [[[0, 0, 0], [10, 20, 30]], [[10, 20, 30], [10, 20, 30]]]


def test_cmyk_jpeg_becomes_rgb():
    data = encoded(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=100)  # pure red in ink
    rgb = decode_rgb(data, MAX_PIXELS).astype(int)
    assert np.abs(rgb - [255, 0, 0]).max() <= 2


def test_16_bit_rgb_png_keeps_the_high_byte():
    data = png(1, 1, 16, 2, zlib.compress(b"\x00" + struct.pack(">HHH", 65535, 256, 255)))  # filter byte, one RGB pixel
    assert decode_rgb(data, MAX_PIXELS).tolist() == [[[255, 1, 0]]]
    assert not portable(data)  # torchvision would read it as uint16


def test_portable_means_8_bit_grey_or_rgb_jpeg_or_png():
    rgb = Image.new("RGB", (4, 4), (1, 2, 3))
    assert portable(encoded(rgb, "JPEG")) and portable(encoded(rgb, "PNG"))
    assert portable(encoded(rgb.convert("L"), "PNG")) and portable(encoded(rgb.convert("L"), "JPEG"))
    assert not portable(encoded(rgb.convert("RGBA"), "PNG"))
    assert not portable(encoded(rgb.convert("P"), "PNG"))
    assert not portable(encoded(rgb.convert("CMYK"), "JPEG"))
    assert not portable(encoded(Image.fromarray(np.zeros((2, 2), np.uint16)), "PNG"))
    assert not portable(encoded(rgb, "BMP"))


def test_truncated_and_garbage_bytes_are_unreadable():
    image = Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8))
    jpeg = encoded(image, "JPEG")
    with pytest.raises(ImageDecodeError) as err:
        decode_rgb(jpeg[: len(jpeg) // 2], MAX_PIXELS)
    assert err.value.reason == "image_unreadable"
    assert str(err.value).startswith("OSError: image file is truncated (")
    for data in (b"", b"not an image"):
        with pytest.raises(ImageDecodeError) as err:
            decode_rgb(data, MAX_PIXELS)
        assert (err.value.reason, str(err.value)) == ("image_unreadable", "not an image in a format PIL reads")


def test_decompression_bombs_are_refused_from_the_header():
    with pytest.raises(ImageDecodeError) as err:
        decode_rgb(png_header_only(10000, 10000), MAX_PIXELS)
    assert (err.value.reason, str(err.value)) == ("image_too_large", f"10000x10000 = 100000000 pixels, more than {MAX_PIXELS}")
    with pytest.raises(ImageDecodeError) as err:  # over twice PIL's limit: PIL itself refuses while opening
        decode_rgb(png_header_only(30000, 30000), 10**12)
    assert err.value.reason == "image_too_large"
    assert str(err.value).startswith("Image size (900000000 pixels) exceeds limit of ")
    with pytest.raises(ImageDecodeError) as err:
        decode_rgb(encoded(Image.new("RGB", (100, 100)), "PNG"), 9999)
    assert (err.value.reason, str(err.value)) == ("image_too_large", "100x100 = 10000 pixels, more than 9999")
