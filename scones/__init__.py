"""scones: the Scones Unlimited vehicle-classification workflow, offline and on AWS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SconesError(Exception):
    """An error the user can act on; the CLI prints its message in one line, no traceback."""


class UsageError(SconesError):
    """The command was given (or lacks) something it needs: a usage error, exit code 2."""


class StackDown(SconesError):
    """The emulator or the model server (or AWS) does not answer; the CLI exits 3."""


# ------------------------------ Output: the core reports, the CLI draws ------------------------

Tick = Callable[..., None]  # moves one bar: tick(completed=N) or tick(advance=N), plus its fields


def _say_nothing(message: str) -> None:
    """Say: one line of progress text (rich markup allowed); the silent default."""


def _show_nothing_busy(message: str) -> AbstractContextManager[object]:
    """Busy: shown while the block runs ("starting the emulator ..."); the silent default."""
    return nullcontext()


def _tick_nothing(**_: object) -> None:
    """Tick: ``tick(completed=N | advance=N, **fields)`` moves a bar; the silent default."""


@contextmanager
def _no_bar(kind: str, total: float | None = None, **fields: object) -> Iterator[Tick]:
    """Bar: ``bar(kind, total, completed=.., **fields)`` opens one ("download", "stage",
    "upload", "load", "train"); the CLI draws each kind with its own columns."""
    yield _tick_nothing


@dataclass(frozen=True)
class Show:
    """How a core operation reports progress: core modules print nothing, they call these.

    The commands (scones/cli/output.py) pass rich-drawn ones; a library caller (tests, the
    explorer) gets ``Show()``, which shows nothing.
    """

    say: Callable[[str], None] = _say_nothing
    busy: Callable[[str], AbstractContextManager[object]] = _show_nothing_busy
    bar: Callable[..., AbstractContextManager[Tick]] = _no_bar


QUIET = Show()
