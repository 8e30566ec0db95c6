"""Step Functions executions: terminal states, waiting for the end, history, typed records."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime

from scones import SconesError

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
REVIEW_ERROR = "ThresholdConfidenceNotMet"  # filter_inferences' error: the image waits for review
# filter_inferences' error when the model's unknown-image score alone kept the image below the
# threshold (a bus, a truck): also in the review queue, counted as its own outcome
UNKNOWN_ERROR = "NotATwoWheeler"
OUTCOMES = ("succeeded", "review", "not_a_two_wheeler", "failed", "running")
POLL_FIRST_S = 0.005  # the first polls are quick: a warm run takes a few hundred ms
POLL_MAX_S = 0.25


class ExecutionTimeout(SconesError):
    """An execution did not end within the time it was given."""


def image_input(bucket: str, key: str) -> dict:
    """The course's event for the image workflow."""
    return {"image_data": "", "s3_bucket": bucket, "s3_key": key, "inferences": []}


# ------------------------------ Records ------------------------------


@dataclass
class ExecutionEnd:
    """How one execution ended, from DescribeExecution: status, error, and the course's output
    (label, confidence, loading bay, inferences) when it SUCCEEDED."""

    arn: str
    status: str
    error: str | None = None
    cause: str | None = None
    output: dict = field(default_factory=dict)

    @classmethod
    def from_described(cls, described: dict) -> ExecutionEnd:
        output = parse_json(described.get("output")) if described["status"] == "SUCCEEDED" else {}
        return cls(
            arn=described["executionArn"],
            status=described["status"],
            error=described.get("error"),
            cause=described.get("cause"),
            output=output if isinstance(output, dict) else {},
        )

    @property
    def outcome(self) -> str:
        return outcome_of(self.status, self.error)

    @property
    def label(self) -> str | None:
        return self.output.get("label")

    @property
    def confidence(self) -> float | None:
        return self.output.get("confidence")

    @property
    def loading_bay(self) -> str | None:
        return self.output.get("loading_bay")

    @property
    def inferences(self) -> list[float] | None:
        return self.output.get("inferences")


@dataclass
class StateVisit:
    """One pass through one state of an execution, from its history events."""

    name: str
    kind: str  # Task, Pass, Choice, Fail, ...
    entered: datetime
    exited: datetime | None = None
    input: object = None
    output: object = None
    resource: str | None = None  # e.g. "lambda:invoke", "sns:publish", "sqs:sendMessage"
    parameters: object = None  # what a Task sent (the SNS message, the SQS body, ...)
    attempts: int = 0  # tasks scheduled; more than one means the Retry fired
    errors: list[dict] = field(default_factory=list)  # each failed attempt: error, cause

    @property
    def seconds(self) -> float | None:
        return (self.exited - self.entered).total_seconds() if self.exited else None

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


@dataclass
class ExecutionRecord:
    """One image workflow execution: where its image is, how it ended, what the model said."""

    arn: str
    name: str
    status: str
    start: datetime
    stop: datetime | None = None
    s3_bucket: str | None = None
    s3_key: str | None = None
    label: str | None = None
    confidence: float | None = None
    inferences: list[float] | None = None
    loading_bay: str | None = None
    error: str | None = None
    cause: str | None = None
    truth: str | None = None  # the .lst label of its image, when it is a staged image
    failed_state: str | None = None
    retries: int = 0
    steps: dict[str, float] = field(default_factory=dict)  # state -> seconds (summed)
    image_sha: str | None = None  # sha256 of the image bytes the workflow read
    image: bytes | None = field(default=None, repr=False)  # kept for thumbnails only

    @property
    def outcome(self) -> str:
        return outcome_of(self.status, self.error)

    @property
    def seconds(self) -> float | None:
        return (self.stop - self.start).total_seconds() if self.stop else None

    @property
    def correct(self) -> bool | None:
        """Whether the model's top label is the truth (None when either is unknown)."""
        if self.truth is None or self.label is None:
            return None
        return self.label == self.truth

    def row(self) -> dict:
        """A flat JSON-able row (tables, report.json)."""
        return {
            "name": self.name,
            "status": self.status,
            "outcome": self.outcome,
            "s3_key": self.s3_key,
            "truth": self.truth,
            "label": self.label,
            "confidence": self.confidence,
            "correct": self.correct,
            "loading_bay": self.loading_bay,
            "error": self.error,
            "failed_state": self.failed_state,
            "retries": self.retries,
            "seconds": self.seconds,
            "start": self.start.isoformat(),
            "stop": self.stop.isoformat() if self.stop else None,
            "arn": self.arn,
        }


def outcome_of(status: str, error: str | None) -> str:
    """succeeded, review (low confidence: in the review queue), not_a_two_wheeler (in the review
    queue too: the model says it is none of the classes), failed, or running."""
    if status == "SUCCEEDED":
        return "succeeded"
    if status == "RUNNING":
        return "running"
    if error == UNKNOWN_ERROR:
        return "not_a_two_wheeler"
    return "review" if error == REVIEW_ERROR else "failed"


def parse_json(text: object) -> object:
    """JSON text parsed; anything else, or text that is not JSON, as it is."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def state_visits(events: list[dict]) -> list[StateVisit]:
    """The states an execution went through, in order, with input, output, attempts and errors."""
    visits: list[StateVisit] = []
    current: StateVisit | None = None
    for event in events:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            details = event.get("stateEnteredEventDetails", {})
            current = StateVisit(
                name=details.get("name", "?"),
                kind=kind[: -len("StateEntered")],
                entered=event["timestamp"],
                input=parse_json(details.get("input")),
            )
            visits.append(current)
        elif kind.endswith("StateExited"):
            details = event.get("stateExitedEventDetails", {})
            name = details.get("name")
            visit = next((v for v in reversed(visits) if v.name == name and not v.exited), None)
            if visit is not None:
                visit.exited = event["timestamp"]
                visit.output = parse_json(details.get("output"))
        elif current is not None and kind == "TaskScheduled":
            details = event.get("taskScheduledEventDetails", {})
            current.attempts += 1
            current.resource = f"{details.get('resourceType')}:{details.get('resource')}"
            current.parameters = parse_json(details.get("parameters"))
        elif current is not None and kind in (
            "TaskFailed",
            "TaskTimedOut",
            "TaskStartFailed",
            "TaskSubmitFailed",
        ):
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            current.errors.append({"error": details.get("error"), "cause": details.get("cause")})
    return visits


def course_body(value: object) -> dict | None:
    """The course's body inside a Lambda result ({"Payload": {"body": ...}} or {"body": ...})."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("Payload"), dict):
        value = value["Payload"]
    body = parse_json(value.get("body", value))
    return body if isinstance(body, dict) else None


def record_from_history(summary: dict, events: list[dict]) -> ExecutionRecord:
    """An ExecutionRecord from a ListExecutions/DescribeExecution entry and its history."""
    record = ExecutionRecord(
        arn=summary["executionArn"],
        name=summary.get("name") or summary["executionArn"].rsplit(":", 1)[-1],
        status=summary["status"],
        start=summary["startDate"],
        stop=summary.get("stopDate"),
    )
    for event in events:
        if event["type"] == "ExecutionStarted":
            payload = parse_json(event["executionStartedEventDetails"].get("input")) or {}
            if isinstance(payload, dict):
                detail = payload.get("detail") if isinstance(payload.get("detail"), dict) else {}
                record.s3_bucket = payload.get("s3_bucket") or detail.get("bucket", {}).get("name")
                record.s3_key = payload.get("s3_key") or detail.get("object", {}).get("key")
        elif event["type"] in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            record.error = details.get("error") or event["type"].removeprefix("Execution")
            record.cause = details.get("cause")
        elif event["type"] == "ExecutionSucceeded":
            output = parse_json(event["executionSucceededEventDetails"].get("output"))
            if isinstance(output, dict):
                record.loading_bay = output.get("loading_bay")
    visits = state_visits(events)
    for visit in visits:
        if visit.seconds is not None:
            record.steps[visit.name] = record.steps.get(visit.name, 0.0) + visit.seconds
        record.retries += visit.retries
        if visit.errors and visit.kind == "Task" and visit.resource == "lambda:invoke":
            record.failed_state = visit.name
        body = course_body(visit.output)
        if not body:
            continue
        if record.image is None and isinstance(body.get("image_data"), str) and body["image_data"]:
            try:
                record.image = base64.b64decode(body["image_data"])
                record.image_sha = hashlib.sha256(record.image).hexdigest()
            except ValueError:
                pass
        inferences = body.get("inferences")
        if isinstance(inferences, str):
            inferences = parse_json(inferences)
        if isinstance(inferences, list) and inferences and record.inferences is None:
            record.inferences = [float(v) for v in inferences]
            record.label = body.get("label")
            conf = body.get("confidence")
            record.confidence = float(conf) if conf is not None else max(record.inferences)
    if record.error in (REVIEW_ERROR, UNKNOWN_ERROR):
        record.failed_state = record.failed_state or "FilterInferences"
    if record.status == "SUCCEEDED" and record.failed_state:
        record.failed_state = None  # a retried step that then worked
    return record


# ------------------------------ Waiting ------------------------------


def wait_for_end(
    sfn,  # noqa: ANN001 - a boto3 stepfunctions client
    execution_arn: str,
    timeout: float,
    max_poll_s: float = POLL_MAX_S,
    hint: str = "",
    first_poll_s: float = 0.0,
) -> dict:
    """DescribeExecution once the execution has ended; ExecutionTimeout after ``timeout`` s.

    Polls quickly first (a warm run takes a few hundred ms), then every ``max_poll_s``;
    ``first_poll_s``: the first poll only after this long (an execution that cannot have ended
    yet is not asked: each poll costs the emulator CPU that the execution also needs).
    """
    deadline = time.monotonic() + timeout
    delay = min(POLL_FIRST_S, max_poll_s)
    time.sleep(max(0.0, min(first_poll_s, timeout)))
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] in TERMINAL:
            described.pop("ResponseMetadata", None)
            return described
        if time.monotonic() > deadline:
            raise ExecutionTimeout(
                f"{execution_arn} still {described['status']} after {timeout:.0f} s "
                f"(SCONES_RUN_TIMEOUT){hint}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, max_poll_s)


# ------------------------------ History ------------------------------


def execution_arn(machine_arn: str, name: str) -> str:
    """The ARN an execution named ``name`` of this state machine has."""
    return machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def list_executions(
    c,  # noqa: ANN001 - holds .sfn (aws.Clients)
    machine_arn: str,
    name_prefix: str | None = None,
    since: datetime | None = None,
    status: str | None = None,
    limit: int | None = None,
) -> list[dict]:
    """ListExecutions entries, newest first, filtered by name prefix and start time."""
    kwargs = {"stateMachineArn": machine_arn, "maxResults": 1000}
    if status:
        kwargs["statusFilter"] = status
    found: list[dict] = []
    token = None
    while True:
        page = c.sfn.list_executions(**kwargs, **({"nextToken": token} if token else {}))
        for e in page["executions"]:
            if name_prefix and not e["name"].startswith(name_prefix):
                continue
            if since and e["startDate"] < since:
                continue
            found.append(e)
        token = page.get("nextToken")
        if not token or (limit and len(found) >= limit):
            break
    found.sort(key=lambda e: e["startDate"], reverse=True)
    return found[:limit] if limit else found


def history(sfn, arn: str) -> list[dict]:  # noqa: ANN001 - a boto3 stepfunctions client
    """Every event of one execution, oldest first."""
    events: list[dict] = []
    token = None
    while True:
        kwargs = {"executionArn": arn, "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        page = sfn.get_execution_history(**kwargs)
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


class RecordCache:
    """Records of ended executions, which never change: a refresh only reads new ones."""

    def __init__(self) -> None:
        self.records: dict[str, ExecutionRecord] = {}

    def get(self, c, summary: dict) -> ExecutionRecord:
        arn = summary["executionArn"]
        cached = self.records.get(arn)
        if cached is not None:
            return cached
        record = record_from_history(summary, history(c.sfn, arn))
        if record.status in TERMINAL:
            self.records[arn] = record
        return record
