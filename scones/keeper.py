"""Keep the workflow deployed: stage and deploy, then again whenever the target has lost them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from scones import SconesError, deploy, stage

OUT = Console()


def keep(
    source: str | None,
    interval: float,
    ready: Path | None = None,
    on_staged: Callable[[stage.StageSummary], None] | None = None,
) -> None:
    """Check every ``interval`` s; when anything is missing, stage ``source`` and deploy again.

    LocalStack core keeps nothing across a restart, so the compose deployer runs this for good
    (stopped by its container's SIGTERM). ``ready`` exists only while the workflow is deployed
    (the service's health check). A failure before the first deployment raises: a wrong source
    stays wrong; later ones (the emulator restarting) are retried at the next check.
    ``on_staged`` is given each staging's summary (the command prints it).
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
                staged = stage.stage(source, progress=True)
                if on_staged is not None:
                    on_staged(staged)
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
