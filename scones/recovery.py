"""`scones redrive` and the reconciliation `scones up` runs: no order is lost to a fault of ours.

Retries in the state machine absorb outages of the endpoint or a Lambda (about 135 s of backoff).
What they cannot absorb ends FAILED with an infrastructure error and is run again here, with
the semantics of Step Functions' RedriveExecution (https://docs.aws.amazon.com/step-functions/
latest/dg/redrive-executions.html): only FAILED, TIMED_OUT or ABORTED executions, the same input,
never twice. AWS redrives the same execution from its failed state; where the target does not
offer RedriveExecution (LocalStack core does not), a new execution named ``<name>-r<N>`` starts
from the beginning with the same input: the workflow's steps are idempotent (read, classify,
route), so running them again changes nothing but the outcome. Bad input (NotAnImage,
ImageNotFound, ...) and low confidence are outcomes, not faults: never redriven.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from scones import config
from scones.executions import execution_arn, image_input, list_executions
from scones.report import clients, image_machine_arn

LOG = logging.getLogger(__name__)

# The emulator plugin's name for an execution cut short by a restart (persistence.py).
RESTART_ERROR = "EmulatorRestarted"
# Errors of the machinery, not of the image: a run with the same input may succeed.
INFRA_ERRORS = {
    RESTART_ERROR,
    "EndpointUnavailable",
    "Runtime.ExitError",
    "Sandbox.Timedout",
    "States.Timeout",
    "States.TaskFailed",
    "States.HeartbeatTimeout",
}
INFRA_PREFIXES = ("Lambda.",)
REDRIVABLE = ("FAILED", "TIMED_OUT", "ABORTED")  # RedriveExecution's own rule
MAX_REDRIVES = 3  # a fourth failure for the same input needs a person, not a loop
SUFFIX = re.compile(r"-r(\d+)$")
RECONCILE_WINDOW = timedelta(days=1)
# Executions cut short by a restart are marked FAILED when the emulator loads them: just now.
RESTART_WINDOW = timedelta(minutes=30)  # uploads older than this are history, not pending orders
THREADS = 8


def is_infra(status: str, error: str | None) -> bool:
    """True for an execution that ended for a reason of ours, not of its input."""
    if status in ("TIMED_OUT", "ABORTED"):
        return True
    return bool(error) and (error in INFRA_ERRORS or error.startswith(INFRA_PREFIXES))


def successor(name: str) -> tuple[str, int]:
    """The name a redrive of ``name`` gets and how many redrives that makes."""
    match = SUFFIX.search(name)
    count = int(match.group(1)) + 1 if match else 1
    base = name[: match.start()] if match else name
    return f"{base[: 80 - len(f'-r{count}')]}-r{count}", count


@dataclass
class RecoveryResult:
    """What a redrive or reconciliation did; `to_dict()` is the --json output."""

    redriven: list[dict] = field(default_factory=list)  # {execution, error, new}
    started: list[dict] = field(default_factory=list)  # reconciled uploads: {key, execution}
    skipped_bad_input: int = 0
    given_up: list[str] = field(default_factory=list)  # MAX_REDRIVES reached

    def to_dict(self) -> dict:
        return asdict(self)


def redrive(
    c=None,
    name_prefix: str | None = None,
    errors: set[str] | None = None,
    dry_run: bool = False,
    machine: str | None = None,
    stopped_since: datetime | None = None,
) -> RecoveryResult:
    """Run again every image-workflow execution that failed for an infrastructure reason.

    :param errors: only these errors (reconciliation passes {EmulatorRestarted}); default all.
    :param machine: another state machine's ARN (default: the deployed image workflow).
    :param stopped_since: only executions that ended after this (reconciliation: the restart).
    """
    c = c or clients()
    machine = machine or image_machine_arn(c)
    everything = list_executions(c, machine, name_prefix)
    have = {e["name"] for e in everything}
    ended = [
        e
        for e in everything
        if e["status"] in REDRIVABLE
        and (stopped_since is None or e.get("stopDate", stopped_since) >= stopped_since)
    ]
    result = RecoveryResult()
    with ThreadPoolExecutor(THREADS) as pool:
        described = list(
            pool.map(lambda e: c.sfn.describe_execution(executionArn=e["executionArn"]), ended)
        )
    for d in described:
        error = d.get("error") or d["status"]
        if not is_infra(d["status"], d.get("error")):
            result.skipped_bad_input += 1
            continue
        if errors and error not in errors:
            continue
        new_name, count = successor(d["name"])
        if new_name in have:
            continue  # redriven before (the successor answers for it now)
        if count > MAX_REDRIVES:
            result.given_up.append(d["executionArn"])
            continue
        entry = {"execution": d["executionArn"], "error": error, "new": ""}
        if not dry_run:
            entry["new"] = _redrive_one(c, machine, d, new_name)
        result.redriven.append(entry)
    if result.given_up:
        LOG.warning(
            "%d executions failed %d times for infrastructure reasons; not redriven again",
            len(result.given_up),
            MAX_REDRIVES,
        )
    return result


def _redrive_one(c, machine: str, described: dict, new_name: str) -> str:
    """AWS's RedriveExecution when the target has it, else a new run with the same input."""
    if config.TARGET == "cloud":
        c.sfn.redrive_execution(executionArn=described["executionArn"])
        return described["executionArn"]
    try:
        return c.sfn.start_execution(
            stateMachineArn=machine, name=new_name, input=described.get("input") or "{}"
        )["executionArn"]
    except c.sfn.exceptions.ExecutionAlreadyExists:
        return execution_arn(machine, new_name)


def pending_uploads(c, since: datetime | None = None) -> list[dict]:
    """Objects under SCONES_INCOMING_PREFIX that no image-workflow execution has read."""
    since = since or datetime.now(UTC) - RECONCILE_WINDOW
    uploads = [
        o
        for page in c.s3.get_paginator("list_objects_v2").paginate(
            Bucket=config.BUCKET, Prefix=config.INCOMING_PREFIX
        )
        for o in page.get("Contents", [])
        if o["LastModified"] >= since
    ]
    if not uploads:
        return []
    machine = image_machine_arn(c)
    oldest = min(o["LastModified"] for o in uploads) - timedelta(minutes=1)
    runs = list_executions(c, machine, since=oldest)
    with ThreadPoolExecutor(THREADS) as pool:
        inputs = list(
            pool.map(
                lambda e: c.sfn.describe_execution(executionArn=e["executionArn"])["input"], runs
            )
        )
    seen = {_key_of(text) for text in inputs}
    return [o for o in uploads if o["Key"] not in seen]


def _key_of(text: str) -> str | None:
    try:
        event = json.loads(text or "{}")
    except ValueError:
        return None
    detail = event.get("detail") if isinstance(event, dict) else None
    if isinstance(detail, dict):
        return (detail.get("object") or {}).get("key")
    return event.get("s3_key") if isinstance(event, dict) else None


def reconcile(c=None) -> RecoveryResult:
    """After a restart: executions cut short run again; uploads no execution read start now."""
    c = c or clients()
    machine = image_machine_arn(c)
    result = RecoveryResult()
    for listed in c.sfn.get_paginator("list_state_machines").paginate():
        for other in listed["stateMachines"]:  # any machine's run was cut short, not just ours
            found = redrive(
                c,
                errors={RESTART_ERROR},
                machine=other["stateMachineArn"],
                stopped_since=datetime.now(UTC) - RESTART_WINDOW,
            )
            result.redriven += found.redriven
            result.given_up += found.given_up
    for upload in pending_uploads(c):
        digest = hashlib.sha256(f"{upload['Key']}\0{upload['ETag']}".encode()).hexdigest()
        name = f"reconcile-{digest[:40]}"
        try:
            arn = c.sfn.start_execution(
                stateMachineArn=machine,
                name=name,
                input=json.dumps(image_input(config.BUCKET, upload["Key"])),
            )["executionArn"]
        except c.sfn.exceptions.ExecutionAlreadyExists:
            continue
        result.started.append({"key": upload["Key"], "execution": arn})
    return result
