"""`scones recover`: re-run executions a restart cut short."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from scones.recovery import (
    MAX_REDRIVES,
    redrive,
)

OUT = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `scones redrive`."""

    @app.command("redrive")
    def redrive_cmd(
        name_prefix: str = typer.Option(None, "--name-prefix", help="Only executions named so."),
        dry_run: bool = typer.Option(False, "--dry-run", help="List, do not start."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Run again the executions that failed for infrastructure reasons (not bad input)."""
        result = redrive(name_prefix=name_prefix, dry_run=dry_run)
        if as_json:
            print(json.dumps(result.to_dict(), indent=2))
            return
        verb = "would redrive" if dry_run else "redriven"
        for entry in result.redriven:
            OUT.print(f"{verb}: {entry['execution']} ({entry['error']}) -> {entry['new']}")
        OUT.print(
            f"{len(result.redriven)} {verb}; {result.skipped_bad_input} failed on their input "
            f"(left alone); {len(result.given_up)} given up after {MAX_REDRIVES} redrives"
        )
