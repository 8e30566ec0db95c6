"""`scones execute`: start an imported state machine and wait for its history."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from scones import config
from scones.aws import (
    AwsError,
)
from scones.byo.errors import ByoError, NotImported
from scones.byo.importer import (
    account_clients,
    ensure_endpoints,
    load_record,
    read_event,
    served_endpoints,
    stage_for_event,
)
from scones.byo.sources import event_endpoint_names, object_refs
from scones.executions import history, wait_for_end
from scones.stage import StageError

LOG = logging.getLogger(__name__)

# ------------------------------ Execute ------------------------------


@dataclass
class Execution:
    """One finished execution: DescribeExecution plus its full history."""

    described: dict
    events: list[dict]
    seconds: float

    @property
    def status(self) -> str:
        return self.described["status"]

    def to_dict(self) -> dict:
        return json.loads(
            json.dumps(
                {"execution": self.described, "events": self.events, "seconds": self.seconds},
                default=_json_default,
            )
        )


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def execute(
    name: str,
    event: Path | str | dict,
    *,
    timeout: float | None = None,
    account: str | None = None,
    region: str | None = None,
) -> Execution:
    """Start an imported state machine with ``event`` and wait for the end of the execution."""
    record = load_record(name)
    account, region = account or record["account"], region or record["region"]
    clients = account_clients(account, region)
    clients.check()
    payload = event if isinstance(event, dict) else read_event(event)
    warnings: list[str] = []
    asked = [u.name for u in event_endpoint_names(payload, "the input")]
    served = served_endpoints()
    if asked and served is not None and not set(asked) <= set(served):
        warnings += ensure_endpoints(list(dict.fromkeys(asked)))[1]  # before the run, not in it
    dataset = Path(record["dataset"]) if record.get("dataset") else None
    if object_refs(payload):
        try:
            stage_for_event(clients, payload, dataset, warnings)
        except (ByoError, StageError, AwsError) as err:  # the run may still work: say, go on
            warnings.append(str(err))
    for warning in warnings:
        LOG.warning("%s", warning)
    sfn = clients("stepfunctions")
    arn = f"arn:aws:states:{region}:{account}:stateMachine:{name}"
    began = time.monotonic()
    try:
        execution_arn = sfn.start_execution(
            stateMachineArn=arn, name=f"scones-{uuid.uuid4().hex[:12]}", input=json.dumps(payload)
        )["executionArn"]
    except sfn.exceptions.StateMachineDoesNotExist as err:
        raise NotImported(f"{arn} does not exist (emulator restarted?); import it again") from err
    described = wait_for_end(sfn, execution_arn, timeout or config.RUN_TIMEOUT, max_poll_s=0.5)
    seconds = round(time.monotonic() - began, 3)
    return Execution(described, history(sfn, execution_arn), seconds)
