"""`scones bench compose`: the docker compose path's figures."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from scones.containers import (
    bench_compose,
)

OUT = Console()


def register_bench(bench: typer.Typer) -> None:
    """Add `scones bench compose`."""

    @bench.command("compose")
    def bench_compose_cmd(
        data_dir: Path = typer.Option(
            None,
            "--data-dir",
            envvar="SCONES_DATA_DIR",
            help="Dataset folder mounted read-only (default: the deployer downloads CIFAR-100).",
        ),
        runs: int = typer.Option(20, help="Warm executions to time."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        smoke: bool = typer.Option(
            False, "--smoke", help="For CI: no cold (--no-cache) build, 3 warm executions."
        ),
    ) -> None:
        """`docker compose` build (cold, cached), up to healthy, first and warm execution, sizes."""
        figures = bench_compose(data_dir, runs=3 if smoke else runs, cold=not smoke)
        if as_json:
            print(json.dumps(figures))
            return
        for name, value in figures.items():
            OUT.print(f"{name:24} {value}")
