"""Keep the workflow deployed: stage and deploy, then again whenever the target has lost them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from cloud import CloudError
from scones import QUIET, SconesError, Show, deploy, stage


def keep(
    source: str | None,
    interval: float,
    ready: Path | None = None,
    on_staged: Callable[[stage.StageSummary], None] | None = None,
    show: Show = QUIET,
) -> None:
    """Check every ``interval`` s; when anything is missing, stage ``source`` and deploy again.

    LocalStack core keeps nothing across a restart, so the compose deployer runs this for good
    (stopped by its container's SIGTERM). ``ready`` exists only while the workflow is deployed
    (the service's health check). A failure before the first deployment raises: a wrong source
    stays wrong; later ones (the emulator restarting) are retried at the next check.
    ``on_staged`` is given each staging's summary (the command prints it); ``show`` reports
    each check's outcome and the staging's progress. A failure in the cloud target's own requests
    (CloudError) is retried like the others once deployed.
    """
    deployed = False
    while True:
        try:
            gone = deploy.missing()
        except (BotoCoreError, ClientError) as err:
            gone = [f"the target cannot be asked ({err})"]
        if gone:
            if ready is not None:
                ready.unlink(missing_ok=True)
            show.say(f"keep-deployed: missing {', '.join(gone[:3])}; staging and deploying")
            try:
                staged = stage.stage(source, show=show)
                if on_staged is not None:
                    on_staged(staged)
                result = deploy.deploy()
            except (SconesError, CloudError, BotoCoreError, ClientError) as err:
                if not deployed:
                    raise
                show.say(f"keep-deployed: failed ({err}); retrying in {interval:g} s")
            else:
                deployed = True
                if ready is not None:
                    ready.touch()
                show.say(
                    f"keep-deployed: the workflow is deployed ({len(result.changed)} changes in "
                    f"{result.seconds:.1f} s); checking every {interval:g} s"
                )
        time.sleep(interval)
