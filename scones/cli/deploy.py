"""`scones deploy`, `scones cleanup`: the workflow's resources."""

from __future__ import annotations

import json

import typer
from rich.console import Console

import cloud
from scones import config, sagemaker_local
from scones.aws import (
    where,
)
from scones.deploy import (
    cleanup,
    deploy,
    missing,
)

OUT = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add deploy and cleanup to the CLI."""

    @app.command("deploy")
    def deploy_cmd(
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        model_data: str = typer.Option(
            None, help="Cloud: the model.tar.gz to serve (default: the last cloud training)."
        ),
        check: bool = typer.Option(
            False, "--check", help="Change nothing: list what is missing; exit 1 if anything is."
        ),
        target: str = typer.Option(
            None,
            "--target",
            help="local, cloud or sagemaker-local (the endpoint's requests run in Docker: our"
            " model container serves the last `scones train --target sagemaker-local`);"
            " default SCONES_TARGET.",
        ),
    ) -> None:
        """Create or update the workflow (Lambdas, state machines, SNS, SQS, rule) on the target.

        With SCONES_TARGET=cloud (or --target sagemaker-local), first the SageMaker endpoint
        (with data capture) it calls.
        """
        if check:
            gone = missing()
            for what in gone:
                OUT.print(f"missing: {what}")
            if gone:
                raise typer.Exit(1)
            OUT.print(f"the workflow is deployed on {where()}")
            return
        target = sagemaker_local.check_target(target)
        runtime_url = None
        if target != "local":
            with OUT.status("deploying the SageMaker endpoint ..."):
                if target == "cloud":
                    endpoint = cloud.deploy_endpoint(
                        config.cloud_settings(), config.STATE_DIR, model_data
                    )
                else:
                    endpoint = sagemaker_local.deploy_endpoint(model_data)
                    runtime_url = endpoint["url"]
            OUT.print(f"endpoint {endpoint['endpoint_name']}: {endpoint['action']}")
        with OUT.status(f"deploying the workflow to {where()} ..."):
            result = deploy(runtime_url=runtime_url)
        if as_json:
            print(json.dumps(result.to_dict(), indent=2))
            return
        OUT.print(
            f"[green]✓[/green] workflow deployed to {where()} in {result.seconds:.1f} s "
            f"({len(result.changed)} changes)"
        )
        for key, arn in result.state_machines.items():
            OUT.print(f"  {key:18} {arn}")
        OUT.print(f"  {'notifications':18} {result.topic_arn} -> {result.notifications_queue_url}")
        OUT.print(f"  {'review queue':18} {result.review_queue_url}")
        OUT.print(
            f"  {'incoming':18} s3://{result.bucket}/{config.INCOMING_PREFIX} -> image_workflow"
        )

    @app.command("cleanup")
    def cleanup_cmd(
        dry_run: bool = typer.Option(False, "--dry-run", help="List, do not delete."),
        force: bool = typer.Option(False, "--force", help="Also delete the bucket and its data."),
        artifacts: bool = typer.Option(
            False, "--artifacts", help="Cloud: also delete training jobs' model artifacts."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        target: str = typer.Option(
            None, "--target", help="sagemaker-local: also stop its endpoint containers."
        ),
    ) -> None:
        """Delete what the project created on the target (the bucket only with --force)."""
        done = cleanup(dry_run, force=force, artifacts=artifacts)
        if sagemaker_local.check_target(target) == sagemaker_local.TARGET:
            endpoints = sagemaker_local.endpoints() if dry_run else sagemaker_local.shutdown()
            done += [f"local endpoint {name} (its container)" for name in endpoints]
        if as_json:
            print(json.dumps({"dry_run": dry_run, "resources": done}, indent=2))
            return
        verb = "would delete" if dry_run else "deleted"
        for line in done:
            OUT.print(f"{verb}: {line}")
        if not done:
            OUT.print("nothing to delete")
