"""Keep the workflow deployed: stage and deploy, then again whenever the target has lost them."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from scones import SconesError, config, deploy, stage

OUT = Console()


def keep(source: str | None, interval: float, ready: Path | None = None) -> None:
    """Check every ``interval`` s; when anything is missing, stage ``source`` and deploy again.

    LocalStack core keeps nothing across a restart, so the compose deployer runs this for good
    (stopped by its container's SIGTERM). ``ready`` exists only while the workflow is deployed
    (the service's health check). A failure before the first deployment raises: a wrong source
    stays wrong; later ones (the emulator restarting) are retried at the next check.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    deployed = False
    while True:
        try:
            gone = deploy.missing()
        except (BotoCoreError, ClientError) as err:
            gone = [f"the target cannot be asked ({err})"]
        if gone:
            if ready is not None:
                ready.unlink(missing_ok=True)
            OUT.print(f"keep-deployed: missing {', '.join(gone[:3])}; staging and deploying")
            try:
                stage.print_summary(stage.stage(source, progress=True))
                result = deploy.deploy()
            except (SconesError, BotoCoreError, ClientError) as err:
                if not deployed:
                    raise
                OUT.print(f"keep-deployed: failed ({err}); retrying in {interval:g} s")
            else:
                deployed = True
                if ready is not None:
                    ready.touch()
                OUT.print(
                    f"keep-deployed: the workflow is deployed ({len(result.changed)} changes in "
                    f"{result.seconds:.1f} s); checking every {interval:g} s"
                )
        time.sleep(interval)


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
        keep(source, interval or config.KEEP_INTERVAL, ready_file)
