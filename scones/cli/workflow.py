"""`scones run`, `scones batch`: one image or a prefix through the workflow."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer
from rich.console import Console

from scones.cli.byo import run_command
from scones.workflow import (
    RunOutcome,
    WorkflowUsageError,
    run_batch,
    run_image,
)

OUT = Console(stderr=True)


def _print_run(outcome: RunOutcome) -> None:
    if outcome.status == "SUCCEEDED":
        OUT.print(
            f"[green]{outcome.status}[/green] {outcome.s3_uri}: {outcome.label} "
            f"({outcome.confidence:.3f}) -> {outcome.loading_bay}  [{outcome.seconds:.2f} s]"
        )
    else:
        OUT.print(
            f"[red]{outcome.status}[/red] {outcome.s3_uri}: {outcome.error}  "
            f"[{outcome.seconds:.2f} s]"
        )
        if outcome.cause:
            OUT.print(f"  cause: {outcome.cause[:300]}", markup=False)
    OUT.print(f"  execution: {outcome.execution_arn}", markup=False)


def register(app: typer.Typer) -> None:
    """Add run, batch and bench workflow to the CLI."""

    @app.command("run")
    def run_cmd(
        source: str = typer.Argument(
            None, help="An image file (uploaded first) or s3://bucket/key."
        ),
        state_machine: str = typer.Option(
            None,
            "--state-machine",
            help="Run this (imported) state machine instead, like the console.",
        ),
        input_path: str = typer.Option(
            None, "--input", help="With --state-machine: the input, a JSON file or JSON text."
        ),
        as_json: bool = typer.Option(
            False, "--json", help="Print JSON (raw history with --state-machine)."
        ),
        timeout: float = typer.Option(None, help="Seconds to wait (default SCONES_RUN_TIMEOUT)."),
    ) -> None:
        """Classify one image with the workflow, or run any state machine with --state-machine.

        Prints the outcome; exits 1 unless the execution SUCCEEDED.
        """
        if state_machine:
            raise typer.Exit(run_command(state_machine, input_path or "{}", as_json, timeout))
        if not source:
            raise WorkflowUsageError(
                "give an image (PATH or s3://bucket/key) or --state-machine NAME"
            )
        outcome = run_image(source, timeout)
        if as_json:
            print(json.dumps(asdict(outcome), indent=2))
        else:
            _print_run(outcome)
        if outcome.status != "SUCCEEDED":
            raise typer.Exit(1)

    @app.command("batch")
    def batch_cmd(
        uri: str = typer.Argument(..., help="s3://bucket/prefix: every object under it."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON (items included)."),
        timeout: float = typer.Option(None, help="Seconds to wait (default SCONES_RUN_TIMEOUT)."),
    ) -> None:
        """Classify every image under an S3 prefix; print counts per outcome and label."""
        outcome = run_batch(uri, timeout)
        if as_json:
            print(json.dumps(asdict(outcome), indent=2))
        elif outcome.status == "SUCCEEDED":
            s = outcome.summary
            OUT.print(
                f"[green]SUCCEEDED[/green] {uri}: {s.get('total')} items in {outcome.seconds:.1f} s"
            )
            OUT.print(f"  outcomes: {s.get('outcomes')}", markup=False)
            OUT.print(f"  labels:   {s.get('labels')}", markup=False)
            if s.get("errors"):
                OUT.print(f"  errors:   {s.get('errors')}", markup=False)
        else:
            OUT.print(f"[red]{outcome.status}[/red] {uri}: {outcome.error} {outcome.cause or ''}")
        if outcome.status != "SUCCEEDED":
            raise typer.Exit(1)
