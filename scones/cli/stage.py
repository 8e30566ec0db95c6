"""`scones stage`: extract, transform and load CIFAR-100."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from scones.cli import output
from scones.dataset import (
    DEFAULT_CLASSES,
    SPLITS,
)
from scones.stage import (
    SEED,
    StageSummary,
    stage,
)


def print_summary(summary: StageSummary, console: Console | None = None) -> None:
    """A table of counts per split and class, then bytes, upload counts and time."""
    console = console or Console()
    splits = [s for s in SPLITS if summary.counts.get(s)]
    table = Table(title=f"staged {summary.name} from {summary.source_kind} {summary.source}")
    for col in ("label", "class", "fine label", *splits):
        table.add_column(col, justify="right" if col != "class" else "left")
    for c in summary.classes:
        row = [str(c["label"]), c["name"], str(c["fine_label"])]
        table.add_row(*row, *(str(c["counts"].get(s, 0)) for s in splits))
    table.add_row("", "total", "", *(str(summary.counts[s]) for s in splits), end_section=True)
    console.print(table)
    console.print(f"folder: {summary.out} ({summary.bytes / 1e6:.1f} MB)")
    if summary.bucket:
        console.print(
            f"bucket: {summary.s3_uri}  uploaded {summary.uploaded} "
            f"({summary.uploaded_bytes / 1e6:.1f} MB), skipped {summary.skipped} already there"
            + (f", deleted {summary.deleted} stale" if summary.deleted else "")
        )
    else:
        console.print("bucket: not uploaded (--no-upload)")
    console.print(f"time: {summary.seconds:.1f} s")


def register(app: typer.Typer) -> None:
    """Add `scones stage` to the CLI."""

    @app.command("stage")
    def stage_command(
        source: str = typer.Option(
            None,
            "--source",
            help="URL or path: a CIFAR-100 python tarball, its extracted folder, "
            "or a staged folder of PNGs with train.lst/test.lst "
            "(default: SCONES_DATASET_URL, the official CIFAR-100 URL).",
        ),
        classes: str = typer.Option(
            ",".join(DEFAULT_CLASSES),
            "--classes",
            help="Comma-separated CIFAR-100 fine names (order = labels 0..N-1), or `vehicles`.",
        ),
        bucket: str = typer.Option(
            None, "--bucket", help="S3 bucket (default: SCONES_BUCKET, scones-data)."
        ),
        prefix: str = typer.Option(
            None, "--prefix", help="S3 key prefix (default: datasets/<name>/)."
        ),
        out: Path = typer.Option(
            None, "--out", help="Staged folder (default: <state>/datasets/<name>)."
        ),
        validation_fraction: float = typer.Option(
            0.0,
            "--validation-fraction",
            min=0.0,
            max=0.99,
            help=f"Share of each class's train images moved to validation (seed {SEED}).",
        ),
        md5: str = typer.Option(None, "--md5", help="Expected MD5 of a non-official tarball."),
        no_upload: bool = typer.Option(False, "--no-upload", help="Only write the local folder."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ) -> None:
        """Extract CIFAR-100, transform it to SageMaker's .lst + PNG format, load it into S3."""
        summary = stage(
            source,
            classes,
            bucket,
            prefix,
            out,
            upload=not no_upload,
            validation_fraction=validation_fraction,
            md5=md5,
            show=output.show(),
        )
        if as_json:
            typer.echo(json.dumps(summary.to_dict(), indent=2))
        else:
            print_summary(summary)
