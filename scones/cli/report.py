"""`scones report`: the HTML report and its summary."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from scones.report import (
    ReportResult,
    build_report,
    parse_since,
)

OUT = Console(stderr=True)


def print_summary(result: ReportResult, console: Console | None = None) -> None:
    """A few lines: counts, accuracy, where the page is."""
    console = console or OUT
    s = result.summary
    acc = f"{s.accuracy:.2%} of {s.judged}" if s.accuracy is not None else "n/a"
    console.print(f"executions {s.executions} ({s.images} images): {s.outcomes}", markup=False)
    if s.failed_by_error:
        console.print(f"failed by error: {s.failed_by_error}", markup=False)
    console.print(
        f"accuracy {acc}; coverage at {s.threshold:g}: "
        f"{s.at_threshold['coverage']:.1%}; capture records {s.capture_records}"
    )
    console.print(f"report: {result.html}")


def register(app: typer.Typer) -> None:
    """Add `scones report`."""

    @app.command("report")
    def report_cmd(
        out: Path = typer.Option(
            None, "--out", help="Folder for index.html, report.json, PNGs (default <state>/report)."
        ),
        name_prefix: str = typer.Option(
            None, "--name-prefix", help="Only executions whose name starts with this."
        ),
        since: str = typer.Option(
            None, "--since", help="Only executions started since: 30m, 2h, 1d or an ISO time."
        ),
        limit: int = typer.Option(None, "--limit", min=1, help="Only the newest N executions."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ) -> None:
        """Write the report: confidence over time, outcomes, accuracy, latency, rejected images."""
        with OUT.status("reading executions and data capture ..."):
            result = build_report(out, name_prefix, parse_since(since), limit)
        if as_json:
            print(
                json.dumps(
                    {
                        "html": str(result.html),
                        "json": str(result.json),
                        **result.summary.to_dict(),
                    },
                    default=str,
                )
            )
            return
        print_summary(result)
