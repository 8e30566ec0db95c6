"""scones: the Scones Unlimited vehicle-classification workflow, offline and on AWS."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SconesError(Exception):
    """An error the user can act on; the CLI prints its message in one line, no traceback."""
