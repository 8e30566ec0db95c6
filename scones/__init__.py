"""scones: the Scones Unlimited vehicle-classification workflow, offline and on AWS."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SconesError(Exception):
    """An error the user can act on; the CLI prints its message in one line, no traceback."""


class UsageError(SconesError):
    """The command was given (or lacks) something it needs: a usage error, exit code 2."""


class StackDown(SconesError):
    """The emulator or the model server (or AWS) does not answer; the CLI exits 3."""
