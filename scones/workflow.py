"""`scones run`, `scones batch`, `scones bench workflow`: start the workflow, wait, report."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from scones import SconesError, UsageError, config
from scones.aws import Clients, NotDeployed, deployed_state_machine
from scones.executions import POLL_MAX_S, TERMINAL, ExecutionEnd, image_input, wait_for_end

LOG = logging.getLogger(__name__)

__all__ = ["TERMINAL", "image_input", "NotDeployed", "WorkflowError", "RunOutcome", "BatchOutcome"]


class WorkflowError(SconesError):
    """The workflow could not be started or did not finish."""


class WorkflowUsageError(WorkflowError, UsageError):
    """The image or URI given is not one the workflow can take (exit code 2)."""


@dataclass
class RunOutcome:
    """One image's execution: how it ended and, if confident, where the item goes (the JSON of
    `scones run --json`; built from an executions.ExecutionEnd)."""

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
        raise WorkflowUsageError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise WorkflowUsageError(f"{uri!r} names no bucket; use s3://bucket/key")
    return bucket, key


def state_machine_arn(clients: Clients, key: str) -> str:
    """The deployed state machine's ARN; aws.NotDeployed if `scones deploy` has not run."""
    return deployed_state_machine(clients, key)


def upload_image(clients: Clients, path: Path) -> tuple[str, str]:
    """Put a local file under SCONES_UPLOAD_PREFIX (no event rule there); returns bucket, key.

    The key holds the content's hash: uploading the same image again overwrites, not piles up.
    """
    if not path.is_file():
        raise WorkflowUsageError(f"{path} is not a file; pass an image path or s3://bucket/key")
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
    clients: Clients,
    execution_arn: str,
    timeout: float,
    max_poll_s: float = POLL_MAX_S,
    first_poll_s: float = 0.0,
) -> dict:
    """DescribeExecution once the execution has ended; ExecutionTimeout after ``timeout`` s."""
    hint = "; see its history with `aws stepfunctions get-execution-history`"
    return wait_for_end(clients.sfn, execution_arn, timeout, max_poll_s, hint, first_poll_s)


def _check_bucket(bucket: str) -> None:
    if bucket != config.BUCKET and config.TARGET != "local":
        # The deployed roles may read SCONES_BUCKET only; elsewhere AWS answers AccessDenied.
        LOG.warning(
            "s3://%s is not SCONES_BUCKET (%s): the workflow's roles cannot read it",
            bucket,
            config.BUCKET,
        )


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
    end = ExecutionEnd.from_described(wait(clients, arn, timeout or config.RUN_TIMEOUT))
    return RunOutcome(
        status=end.status,
        execution_arn=arn,
        s3_uri=f"s3://{bucket}/{key}",
        label=end.label,
        confidence=end.confidence,
        loading_bay=end.loading_bay,
        inferences=end.inferences,
        error=end.error,
        cause=end.cause,
        seconds=round(time.monotonic() - began, 3),
    )


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
    end = ExecutionEnd.from_described(wait(clients, arn, timeout or config.RUN_TIMEOUT))
    return BatchOutcome(
        status=end.status,
        execution_arn=arn,
        s3_uri=uri,
        summary=end.output,
        error=end.error,
        cause=end.cause,
        seconds=round(time.monotonic() - began, 3),
    )


# ------------------------------ Commands ------------------------------
