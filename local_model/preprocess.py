"""Image bytes -> model input: one preprocessing path for training, evaluation and serving.

The model is trained on CIFAR's 32x32 thumbnails, so a photo of any size is first made to look like
one: EXIF orientation applied, alpha flattened on white, the long side cropped to at most
``max_aspect`` times the short side (then squashed square), and downscaled with antialiasing to the
model's input size (32 px). Upsampling to the backbone's working resolution happens inside the ONNX
graph, so training and serving feed exactly the same 32x32 pixels.
"""

from __future__ import annotations

import io
import logging
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and Pillow are cheap, but keep `scones --help` free of them
    import numpy as np
    from PIL import Image

LOG = logging.getLogger(__name__)

MAX_PIXELS = 40_000_000  # 40 MP: a 48 MP phone photo is rejected, a 24 MP DSLR photo is fine
# Pillow can read more, but these are what cameras, phones and the web produce.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG also opens MPO (phone photos)
DEFAULT_SPEC = {  # what prepare() assumes for keys a model.json does not set
    "height": 32,
    "width": 32,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "max_aspect": 1.25,  # crop the long side to <= 1.25x the short side, then squash square
    "resample": "bicubic",  # antialiased when downscaling (Pillow scales the filter support)
    "background": [255, 255, 255],  # transparent pixels become white, like a product photo
}


class InvalidImage(ValueError):
    """The bytes are not an image we can read: empty, truncated, corrupt or unsupported format."""


class ImageTooLarge(ValueError):
    """The image has more pixels than allowed (a decompression bomb or an oversized photo)."""


def decode_image(
    data: bytes, max_pixels: int = MAX_PIXELS, min_size: int | None = None
) -> Image.Image:
    """Bytes -> RGB PIL image, EXIF orientation applied, fully loaded.

    :param max_pixels: width*height limit checked from the header, before any pixel is decoded.
    :param min_size: if given, a JPEG may be decoded at a reduced scale (DCT scaling, 1/2..1/8)
        as long as both sides stay >= min_size; a large speed-up for big photos that prepare()
        shrinks to 32 px anyway. None decodes at full size.
    :raises InvalidImage: not an image, truncated, or a format outside FORMATS.
    :raises ImageTooLarge: more than max_pixels pixels.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.init()  # registers every plugin, so `formats=` below knows MPO, WebP, ...
    if not data:
        raise InvalidImage("empty body: send the image bytes (JPEG, PNG, WebP, ...)")
    try:
        with warnings.catch_warnings():
            # Our own limit applies; Pillow's warning (or error at 2x its limit) would be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = img.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"image is {width}x{height} = {width * height:,} pixels, more than the "
                    f"{max_pixels:,} allowed; downscale it before sending"
                )
            if width < 1 or height < 1:
                raise InvalidImage(f"image has no pixels ({width}x{height})")
            if min_size and img.format in ("JPEG", "MPO"):
                # draft() keeps both sides >= the requested size; the mode stays as decoded
                img.draft(img.mode, (min_size, min_size))
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except ImageTooLarge:
        raise
    except Image.DecompressionBombError as err:
        raise ImageTooLarge(f"image rejected as a decompression bomb: {err}") from err
    except UnidentifiedImageError as err:
        raise InvalidImage(f"not a supported image (expected one of {', '.join(FORMATS)})") from err
    except InvalidImage:
        raise
    except MemoryError:
        raise
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError... on corrupt data
        raise InvalidImage(f"image could not be decoded ({type(err).__name__}: {err})") from err


def _to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is composited onto ``background``."""
    from PIL import Image

    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / 32-bit greyscale: scale the real range to 0..255 instead of clipping at 255
        import numpy as np

        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")


def _spec(spec: dict) -> dict:
    return {**DEFAULT_SPEC, **(spec or {})}


def fit(image: Image.Image, spec: dict) -> Image.Image:
    """One RGB image -> RGB image of the model's input size (crop to max_aspect, antialias)."""
    from PIL import Image

    s = _spec(spec)
    height, width = int(s["height"]), int(s["width"])
    if image.mode != "RGB":
        image = _to_rgb(image, tuple(s["background"]))
    w, h = image.size
    # Centre-crop only the excess beyond max_aspect: a full square crop would cut the wheels off a
    # side-on bike photo, squashing a 16:9 photo would distort it more than training ever saw.
    target = width / height
    max_aspect = float(s["max_aspect"])
    if w / h > target * max_aspect:
        new_w = max(1, round(h * target * max_aspect))
        left = (w - new_w) // 2
        image = image.crop((left, 0, left + new_w, h))
    elif h / w > max_aspect / target:
        new_h = max(1, round(w * max_aspect / target))
        top = (h - new_h) // 2
        image = image.crop((0, top, w, top + new_h))
    if image.size == (width, height):
        return image
    resample = {
        "bicubic": Image.Resampling.BICUBIC,
        "bilinear": Image.Resampling.BILINEAR,
        "lanczos": Image.Resampling.LANCZOS,
        "box": Image.Resampling.BOX,
    }[str(s["resample"]).lower()]
    # reducing_gap: box-reduce by an integer factor first (fast on 12 MP photos), then resample
    # the last >= 3x with the full filter; visually identical to a single antialiased resize.
    return image.resize((width, height), resample, reducing_gap=3.0)


def to_array(image: Image.Image, spec: dict) -> np.ndarray:
    """An RGB image already of the model's size -> normalised float32 (3, H, W)."""
    import numpy as np

    s = _spec(spec)
    arr = np.asarray(image, dtype=np.float32) * (1.0 / 255.0)
    mean = np.asarray(s["mean"], dtype=np.float32)
    std = np.asarray(s["std"], dtype=np.float32)
    arr = (arr - mean) / std
    return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)


def prepare(image: Image.Image, spec: dict) -> np.ndarray:
    """One RGB image -> float32 array (3, H, W) normalised as the model expects.

    :param spec: model.json["input"] (height, width, mean, std; optional max_aspect, resample).
    """
    return to_array(fit(image, spec), spec)


def prepare_batch(images: list, spec: dict) -> np.ndarray:
    """A list of RGB images -> float32 array (N, 3, H, W)."""
    import numpy as np

    s = _spec(spec)
    if not images:
        return np.zeros((0, 3, int(s["height"]), int(s["width"])), dtype=np.float32)
    return np.stack([prepare(img, s) for img in images]).astype(np.float32, copy=False)
