"""preprocess.py: any image bytes -> the model's 32 px input, with named errors for bad input."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from local_model import preprocess
from local_model.preprocess import ImageTooLarge, InvalidImage, decode_image, prepare, prepare_batch

SPEC = {"height": 32, "width": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def encode(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def halves(width: int, height: int) -> Image.Image:
    """Left half red, right half blue: orientation mistakes are visible."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:, : width // 2] = (255, 0, 0)
    arr[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(arr)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height; the pixel data is a few bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_decode_applies_exif_orientation():
    upright = halves(60, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": store the pixels turned the other way
    data = encode(upright.rotate(90, expand=True), "JPEG", quality=95, exif=exif.tobytes())
    img = decode_image(data)
    assert img.mode == "RGB"
    assert img.size == (60, 40)
    left, right = np.asarray(img)[20, 5], np.asarray(img)[20, 55]
    assert left[0] > 200 and left[2] < 60, "left half should be red after orientation"
    assert right[2] > 200 and right[0] < 60


def test_huge_photo_becomes_model_input():
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8))
    data = encode(photo, "JPEG", quality=80)
    full = decode_image(data)
    assert full.size == (4000, 3000)
    small = decode_image(data, min_size=64)  # JPEG DCT scaling, both sides stay >= 64
    assert min(small.size) >= 64 and small.size[0] < 4000
    for img in (full, small):
        x = prepare(img, SPEC)
        assert x.shape == (3, 32, 32) and x.dtype == np.float32


def test_rgba_is_flattened_on_white():
    img = Image.new("RGBA", (40, 40), (0, 0, 0, 0))  # fully transparent black
    img.paste((255, 0, 0, 255), (0, 0, 20, 40))
    rgb = decode_image(encode(img))
    assert rgb.mode == "RGB"
    arr = np.asarray(rgb)
    assert tuple(arr[10, 5]) == (255, 0, 0)
    assert tuple(arr[10, 35]) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "I;16", "CMYK", "1"])
def test_other_modes_become_rgb(mode):
    base = halves(48, 48)
    if mode == "I;16":
        arr = (np.asarray(base.convert("L"), dtype=np.uint16) * 200).astype(np.uint16)
        img = Image.fromarray(arr)  # uint16 -> mode I;16
    else:
        img = base.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "I;16" else "PNG")
    rgb = decode_image(encode(img, fmt))
    assert rgb.mode == "RGB" and rgb.size == (48, 48)
    x = prepare(rgb, SPEC)
    assert x.shape == (3, 32, 32) and np.isfinite(x).all()


def test_decompression_bomb_is_too_large():
    with pytest.raises(ImageTooLarge, match="pixels"):
        decode_image(png_header_only(100_000, 100_000))
    with pytest.raises(ImageTooLarge):
        decode_image(encode(Image.new("RGB", (200, 100))), max_pixels=10_000)


@pytest.mark.parametrize(
    "data",
    [b"", b"definitely not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"%PDF-1.4\n"],
    ids=["empty", "text", "broken-png", "pdf"],
)
def test_garbage_is_invalid(data):
    with pytest.raises(InvalidImage):
        decode_image(data)


def test_truncated_jpeg_is_invalid():
    data = encode(halves(200, 200), "JPEG")
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 2])


def test_errors_are_value_errors():
    # the server maps ValueError subclasses to HTTP 4xx
    assert issubclass(InvalidImage, ValueError) and issubclass(ImageTooLarge, ValueError)


def test_thumbnail_pixels_pass_through_unchanged():
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    x = prepare(decode_image(encode(Image.fromarray(arr))), SPEC)
    expected = (arr.astype(np.float32) / 255 - 0.5) / 0.25
    np.testing.assert_allclose(x, expected.transpose(2, 0, 1), atol=1e-5)


def test_wide_photo_keeps_most_of_the_scene():
    # a 4:1 panorama: the centre crop keeps at most max_aspect x the height, then squashes
    img = Image.new("RGB", (400, 100), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 130, 100))  # red only in the left third: cropped away
    fitted = preprocess.fit(img, SPEC)
    assert fitted.size == (32, 32)
    assert np.asarray(fitted)[..., 0].max() < 50


def test_prepare_batch_stacks():
    images = [halves(32, 32), halves(640, 480), Image.new("RGB", (7, 9), (9, 9, 9))]
    batch = prepare_batch(images, SPEC)
    assert batch.shape == (3, 3, 32, 32) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0], prepare(images[0], SPEC))
    assert prepare_batch([], SPEC).shape == (0, 3, 32, 32)
