"""`scones keep-deployed`: redeploy whenever the emulator lost the workflow."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from scones import Show, config
from scones.cli import output
from scones.cli.stage import print_summary
from scones.keeper import keep


def register(app: typer.Typer) -> None:
    """Add `scones keep-deployed`."""

    @app.command("keep-deployed")
    def keep_cmd(
        source: str = typer.Option(
            None, "--source", help="What `scones stage` reads (default: SCONES_DATASET_URL)."
        ),
        interval: float = typer.Option(
            None,
            "--interval",
            min=0.5,
            help="Seconds between checks (default: SCONES_KEEP_INTERVAL).",
        ),
        ready_file: Path = typer.Option(
            None, "--ready-file", help="A file that exists only while the workflow is deployed."
        ),
    ) -> None:
        """Stage and deploy, then check forever and do both again when anything is lost."""
        lines = Console()  # its lines on stdout (a container's log), staging's bar on stderr
        show = Show(say=lines.print, busy=lines.status, bar=output.show().bar)
        keep(source, interval or config.KEEP_INTERVAL, ready_file, print_summary, show)
