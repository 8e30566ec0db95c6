"""`scones load`: a stream or burst of executions, every one accounted for."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from scones.cli import output
from scones.cli.output import ERR as OUT
from scones.load import (
    DEFAULT_DATASET,
    START_THREADS,
    WAIT_BASE_S,
    WAIT_PER_EXECUTION_S,
    LoadSummary,
    LoadUsageError,
    run_load,
)


def print_summary(s: LoadSummary, console: Console | None = None) -> None:
    """The closing summary as a few lines."""
    console = console or OUT
    mark = "[green]0[/green]" if s.unaccounted == 0 else f"[red]{s.unaccounted}[/red]"
    console.print(
        f"load {s.run_id} ({s.mode}): sent {s.sent}, started {s.started} in "
        f"{s.send_seconds:.1f} s; all ended after {s.seconds:.1f} s "
        f"({s.executions_per_s} executions/s)"
    )
    console.print(f"  succeeded {s.succeeded} {s.succeeded_by_label}", markup=False)
    console.print(f"  reviewed  {s.reviewed} (low confidence, in the review queue)")
    console.print(
        f"  not a two-wheeler {s.not_a_two_wheeler} (unknown to the model, in the review queue)"
    )
    console.print(f"  failed    {s.failed} {s.failed_by_error}", markup=False)
    console.print(f"  unaccounted {mark} (DescribeExecution of every execution started)")
    for kind, counts in sorted(s.by_kind.items()):
        console.print(f"  {kind:14} {counts}", markup=False)
    console.print(
        f"  executions: names {s.name_prefix}*  (scones report --name-prefix {s.name_prefix})",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    """Add `scones load`."""

    @app.command("load")
    def load_cmd(
        rate: float = typer.Option(None, "--rate", min=0.01, help="Executions per second."),
        duration: float = typer.Option(None, "--duration", min=0.1, help="Seconds of --rate."),
        burst: int = typer.Option(None, "--burst", min=1, help="Start N executions at once."),
        bad_share: float = typer.Option(
            0.1,
            "--bad-share",
            min=0.0,
            max=1.0,
            help="Share of bad inputs (non-images, other vehicles, missing keys).",
        ),
        dataset: str = typer.Option(
            DEFAULT_DATASET, "--dataset", help="Staged dataset (datasets/<name>/ in the bucket)."
        ),
        split: str = typer.Option("test", "--split", help="Which split's images to send."),
        seed: int = typer.Option(0, "--seed", help="Order and mix of the inputs."),
        wait: float = typer.Option(
            None,
            "--wait",
            min=0,
            help=f"Seconds to wait after the last start (default "
            f"{WAIT_BASE_S:.0f} + {WAIT_PER_EXECUTION_S} per execution).",
        ),
        threads: int = typer.Option(
            START_THREADS, "--threads", min=1, max=64, help="StartExecution calls in flight."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ) -> None:
        """Dummy traffic through the workflow: a stream (--rate, --duration) or a --burst."""
        if burst is not None and (rate is not None or duration is not None):
            raise LoadUsageError("give either --burst N or --rate R --duration S, not both")
        if burst is None and (rate is None or duration is None):
            raise LoadUsageError("give --rate R --duration S (a stream) or --burst N (all at once)")
        count = burst if burst is not None else max(1, round(rate * duration))
        summary = run_load(
            count,
            None if burst else rate,
            bad_share,
            dataset,
            split,
            seed,
            wait,
            threads,
            show=output.show(bars=not as_json),
        )
        if as_json:
            print(json.dumps(summary.to_dict(), indent=2))
        else:
            print_summary(summary)
        if summary.unaccounted:
            raise typer.Exit(1)
