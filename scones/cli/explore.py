"""`scones explore`: the Streamlit explorer."""

from __future__ import annotations

import subprocess

import typer
from rich.console import Console

from scones import PROJECT_ROOT
from scones.explore import (
    APP,
    DEFAULT_PORT,
    ExplorerError,
    command,
    environment,
)

OUT = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `scones explore`."""

    @app.command("explore")
    def explore_cmd(
        port: int = typer.Option(DEFAULT_PORT, "--port", help="Port on 127.0.0.1."),
    ) -> None:
        """Open the live explorer: executions, one execution's states, threshold, review queue."""
        if not APP.is_file():
            raise ExplorerError(f"{APP} is missing; is this a complete checkout?")
        try:
            import streamlit  # noqa: F401 - lazy: only asks whether the `explorer` extra is there
        except ImportError as err:
            raise ExplorerError("streamlit is not installed; pip install streamlit") from err
        OUT.print(f"explorer on http://127.0.0.1:{port} (Ctrl+C stops it)")
        try:
            done = subprocess.run(command(port), env=environment(), cwd=PROJECT_ROOT)
        except KeyboardInterrupt:
            return
        if done.returncode not in (0, -2, 130):
            raise typer.Exit(done.returncode)
