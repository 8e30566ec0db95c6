"""What `scones import` keeps for the stack across restarts: extra services and endpoint names.

The stack reads it when it starts the emulator and the model server; `scones import` writes it.
Its own module so that the stack (below) never imports the importer (above).
"""

from __future__ import annotations

import json
from pathlib import Path

from scones import config


def services_file() -> Path:
    return config.STATE_DIR / "byo" / "services.json"


def alias_file() -> Path:
    return config.STATE_DIR / "byo" / "endpoint-aliases.json"


def _read(path: Path) -> list[str]:
    try:
        return list(json.loads(path.read_text()))
    except (OSError, ValueError):  # nothing imported yet, or a file the user broke: start over
        return []


def _write(path: Path, names: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(names, indent=1))


def services() -> list[str]:
    """Services imported projects need besides SCONES_EMULATOR_SERVICES (the stack starts them)."""
    return _read(services_file())


def add_services(names: list[str]) -> list[str]:
    """Remember ``names`` too; returns the ones that were new."""
    known = services()
    new = [n for n in names if n not in known]
    if new:
        _write(services_file(), known + new)
    return new


def endpoint_names() -> list[str]:
    """Every endpoint name imported projects use (so a restarted model server still answers)."""
    return _read(alias_file())


def add_endpoint_names(names: list[str]) -> list[str]:
    """Remember ``names`` too; returns every name known."""
    known = list(dict.fromkeys([*endpoint_names(), *names]))
    _write(alias_file(), known)
    return known
