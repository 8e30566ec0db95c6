"""The sample events of tests/events/ and small images to put in them."""

from __future__ import annotations

import io
import json
from pathlib import Path

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"


def event(name: str) -> dict:
    """A fresh copy of tests/events/<name>.json."""
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


def png_bytes(
    color: tuple[int, int, int] = (220, 20, 20), size: int = 32, fmt: str = "PNG"
) -> bytes:
    """A solid-colour image's bytes (red by default: the tiny model's first class)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, fmt)
    return buffer.getvalue()
