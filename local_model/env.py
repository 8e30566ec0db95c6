"""The SCONES_* variables the model server reads when it runs on its own (the model container).

The `scones` CLI validates the same variables in scones/config.py and starts the server with them
in its environment; here they are only parsed, and a value that does not parse names its variable.
Defaults live on the dataclasses they fill (serve.ServerSettings, capture.CaptureConfig).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from local_model import LocalModelError

PREFIX = "SCONES_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# What scones/config.py defaults these to when unset: the checkout's state folder, the emulator
# on loopback. Needed only for where capture spools and which S3 it writes to.
DEFAULT_STATE_DIR = PROJECT_ROOT / ".scones"
EMULATOR_HOST, EMULATOR_PORT = "127.0.0.1", 4566
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class SettingsError(LocalModelError):
    """A SCONES_* variable holds a value the model server cannot parse."""


def flag(text: str) -> bool:
    """1/0, true/false, yes/no, on/off, as pydantic reads SCONES_CAPTURE_ENABLED."""
    value = text.strip().lower()
    if value not in TRUE + FALSE:
        raise ValueError("use 1 or 0 (true/false, yes/no, on/off)")
    return value in TRUE


def names(text: str) -> tuple[str, ...]:
    """A comma-separated list, as SCONES_ENDPOINT_ALIASES is written."""
    return tuple(n.strip() for n in text.split(",") if n.strip())


def path(text: str) -> Path:
    return Path(text).expanduser().resolve()


def read(
    fields: Mapping[str, tuple[str, Callable[[str], Any]]],
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """{field: parsed value} for each ``field: (VARIABLE, parse)`` whose SCONES_VARIABLE is set.

    Empty values count as unset, as in scones/config.py.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field, (variable, parse) in fields.items():
        raw = env.get(PREFIX + variable, "").strip()
        if not raw:
            continue
        try:
            values[field] = parse(raw)
        except ValueError as err:
            raise SettingsError(f"{PREFIX}{variable}={raw!r}: {err}") from None
    return values


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """SCONES_STATE_DIR, else the checkout's .scones."""
    return read({"dir": ("STATE_DIR", path)}, environ).get("dir", DEFAULT_STATE_DIR)


def emulator_url(environ: Mapping[str, str] | None = None) -> str:
    """The emulator's gateway from SCONES_EMULATOR_HOST/PORT (scones.config.emulator_url's)."""
    got = read({"host": ("EMULATOR_HOST", str), "port": ("EMULATOR_PORT", int)}, environ)
    return f"http://{got.get('host', EMULATOR_HOST)}:{got.get('port', EMULATOR_PORT)}"


def target(environ: Mapping[str, str] | None = None) -> str:
    """SCONES_TARGET: local (the default) or cloud."""
    return read({"t": ("TARGET", str.lower)}, environ).get("t", "local")


def region(environ: Mapping[str, str] | None = None) -> str:
    """SCONES_REGION, else AWS_DEFAULT_REGION, else us-east-1 (the local target's default)."""
    env = os.environ if environ is None else environ
    found = read({"r": ("REGION", str)}, environ).get("r")
    return found or env.get("AWS_DEFAULT_REGION") or "us-east-1"
