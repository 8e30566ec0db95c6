"""`scones run`, `scones batch`, `scones bench workflow`: start the workflow, wait, report."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import typer
from rich.console import Console

from scones import SconesError, config
from scones.deploy import Clients, names

LOG = logging.getLogger(__name__)
OUT = Console(stderr=True)

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
POLL_FIRST_S = 0.005  # the first polls are quick: a warm run takes a few hundred ms
POLL_MAX_S = 0.25


class WorkflowError(SconesError):
    """The workflow could not be started or did not finish."""


class NotDeployed(WorkflowError):
    """The state machine does not exist on the target."""


@dataclass
class RunOutcome:
    """One image's execution: how it ended and, if confident, where the item goes."""

    status: str
    execution_arn: str
    s3_uri: str
    label: str | None = None
    confidence: float | None = None
    loading_bay: str | None = None
    inferences: list[float] | None = None
    error: str | None = None
    cause: str | None = None
    seconds: float = 0.0


@dataclass
class BatchOutcome:
    """A batch execution: its status and the summary (counts per outcome and label)."""

    status: str
    execution_arn: str
    s3_uri: str
    summary: dict = field(default_factory=dict)
    error: str | None = None
    cause: str | None = None
    seconds: float = 0.0


# ------------------------------ Helpers ------------------------------


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key)."""
    if not uri.startswith("s3://"):
        raise WorkflowError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise WorkflowError(f"{uri!r} names no bucket; use s3://bucket/key")
    return bucket, key


def state_machine_arn(clients: Clients, key: str) -> str:
    """The deployed state machine's ARN; NotDeployed if `scones deploy` has not run."""
    arn = clients.arn("states", f"stateMachine:{names().state_machine(key)}")
    try:
        clients.sfn.describe_state_machine(stateMachineArn=arn)
    except clients.sfn.exceptions.StateMachineDoesNotExist as err:
        raise NotDeployed(f"{arn} does not exist; run `scones deploy` first") from err
    return arn


def upload_image(clients: Clients, path: Path) -> tuple[str, str]:
    """Put a local file under SCONES_UPLOAD_PREFIX (no event rule there); returns bucket, key.

    The key holds the content's hash: uploading the same image again overwrites, not piles up.
    """
    if not path.is_file():
        raise WorkflowError(f"{path} is not a file; pass an image path or s3://bucket/key")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    key = f"{config.UPLOAD_PREFIX}{digest}/{path.name}"
    clients.s3.put_object(Bucket=config.BUCKET, Key=key, Body=data)
    return config.BUCKET, key


def start(clients: Clients, machine_arn: str, payload: dict, name: str | None = None) -> str:
    kwargs = {"name": name} if name else {}
    return clients.sfn.start_execution(
        stateMachineArn=machine_arn, input=json.dumps(payload), **kwargs
    )["executionArn"]


def wait(
    clients: Clients, execution_arn: str, timeout: float, max_poll_s: float = POLL_MAX_S
) -> dict:
    """DescribeExecution once the execution has ended; WorkflowError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    delay = min(POLL_FIRST_S, max_poll_s)
    while True:
        described = clients.sfn.describe_execution(executionArn=execution_arn)
        if described["status"] in TERMINAL:
            return described
        if time.monotonic() > deadline:
            raise WorkflowError(
                f"{execution_arn} still {described['status']} after {timeout:.0f} s "
                "(SCONES_RUN_TIMEOUT); see its history with `aws stepfunctions "
                "get-execution-history`"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, max_poll_s)


def _check_bucket(bucket: str) -> None:
    if bucket != config.BUCKET and config.TARGET != "local":
        # The deployed roles may read SCONES_BUCKET only; elsewhere AWS answers AccessDenied.
        LOG.warning(
            "s3://%s is not SCONES_BUCKET (%s): the workflow's roles cannot read it",
            bucket,
            config.BUCKET,
        )


def image_input(bucket: str, key: str) -> dict:
    """The course's event for the image workflow."""
    return {"image_data": "", "s3_bucket": bucket, "s3_key": key, "inferences": []}


# ------------------------------ run / batch ------------------------------


def run_image(
    source: str, timeout: float | None = None, clients: Clients | None = None
) -> RunOutcome:
    """Classify one image (a local path, uploaded first, or s3://bucket/key) and wait."""
    clients = clients or Clients()
    machine = state_machine_arn(clients, "image_workflow")
    if source.startswith("s3://"):
        bucket, key = parse_s3_uri(source)
        _check_bucket(bucket)
    else:
        bucket, key = upload_image(clients, Path(source).expanduser())
    began = time.monotonic()
    arn = start(clients, machine, image_input(bucket, key))
    described = wait(clients, arn, timeout or config.RUN_TIMEOUT)
    outcome = RunOutcome(
        status=described["status"],
        execution_arn=arn,
        s3_uri=f"s3://{bucket}/{key}",
        error=described.get("error"),
        cause=described.get("cause"),
        seconds=round(time.monotonic() - began, 3),
    )
    if described["status"] == "SUCCEEDED":
        output = json.loads(described.get("output") or "{}")
        outcome.label = output.get("label")
        outcome.confidence = output.get("confidence")
        outcome.loading_bay = output.get("loading_bay")
        outcome.inferences = output.get("inferences")
    return outcome


def run_batch(
    uri: str, timeout: float | None = None, clients: Clients | None = None
) -> BatchOutcome:
    """Classify every object under s3://bucket/prefix with the batch workflow and wait."""
    clients = clients or Clients()
    machine = state_machine_arn(clients, "batch_workflow")
    bucket, prefix = parse_s3_uri(uri)
    _check_bucket(bucket)
    listed = clients.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    if not listed.get("KeyCount"):  # the Map's ItemReader fails on an empty listing
        raise WorkflowError(f"nothing under {uri}; upload images there first")
    began = time.monotonic()
    arn = start(clients, machine, {"s3_bucket": bucket, "prefix": prefix})
    described = wait(clients, arn, timeout or config.RUN_TIMEOUT)
    outcome = BatchOutcome(
        status=described["status"],
        execution_arn=arn,
        s3_uri=uri,
        error=described.get("error"),
        cause=described.get("cause"),
        seconds=round(time.monotonic() - began, 3),
    )
    if described["status"] == "SUCCEEDED":
        outcome.summary = json.loads(described.get("output") or "{}")
    return outcome


# ------------------------------ Commands ------------------------------


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
            from scones import byo  # the console-style printer for any state machine

            raise typer.Exit(byo.run_command(state_machine, input_path or "{}", as_json, timeout))
        if not source:
            raise WorkflowError("give an image (PATH or s3://bucket/key) or --state-machine NAME")
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
