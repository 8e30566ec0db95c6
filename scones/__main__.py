"""`python -m scones` runs the CLI."""

from scones.cli import run

run()
