"""`scones demo`: the whole job in one command."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import typer

from scones.cli.output import ERR as OUT
from scones.cli.output import show
from scones.demo import demo


def register(app: typer.Typer) -> None:
    """Add `scones demo`."""

    @app.command("demo")
    def demo_cmd(
        source: str = typer.Option(
            None,
            "--source",
            help="CIFAR-100: the official URL (default) or a local copy (offline): a"
            " cifar-100-python tarball, its folder, or a staged folder.",
        ),
        out: Path = typer.Option(None, "--out", help="Report folder (default <state>/report)."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """The main job: stack up, stage the data, model, deploy, stream the test split, report."""
        began = time.monotonic()
        result = demo(source, out, show(bars=not as_json))
        if as_json:
            print(json.dumps(asdict(result), indent=2, default=str))
            return
        s = result.summary
        acc = f"{s.accuracy:.2%}" if s.accuracy is not None else "n/a"
        OUT.print(
            f"\n[bold]demo done in {time.monotonic() - began:.1f} s[/bold]: "
            f"{s.executions} executions, outcomes {s.outcomes}, accuracy {acc}, "
            f"coverage {s.at_threshold['coverage']:.1%} at {s.threshold:g}",
            highlight=False,
        )
        OUT.print(f"report:   {result.report}")
        OUT.print(f"explorer: `scones explore`, then open {result.explorer}")
