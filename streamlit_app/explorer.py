"""The explorer's logic as plain functions (app.py lays them out): tables, drill-down, health."""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime

from scones import config, stack
from scones.aws import names
from scones.executions import (
    OUTCOMES,
    ExecutionRecord,
    RecordCache,
    history,
    record_from_history,
    state_visits,
)
from scones.report import (
    clients,
    collect,
    confidence_figure,
    deployed_threshold,
    ground_truth,
    image_machine_arn,
    redact,
    threshold_effect,
)

LOG = logging.getLogger(__name__)

SWEEP = [round(0.5 + i * 0.01, 2) for i in range(51)]  # thresholds 0.50 ... 1.00
PEEK_MAX = 10  # SQS returns at most 10 messages per call


@dataclass
class Explorer:
    """One connection to the target plus the records already read (ended executions only)."""

    c: object = field(default_factory=clients)
    cache: RecordCache = field(default_factory=RecordCache)
    truth: dict[str, str] | None = None

    def records(
        self, name_prefix: str | None = None, limit: int | None = 500, refresh_truth: bool = False
    ) -> list[ExecutionRecord]:
        """The newest executions (running ones re-read on every call)."""
        if self.truth is None or refresh_truth:
            self.truth = ground_truth(self.c)
        return collect(self.c, name_prefix or None, None, limit, self.truth, self.cache)

    def threshold(self) -> float:
        return deployed_threshold(self.c)


# ------------------------------ Executions table ------------------------------


def table_rows(records: list[ExecutionRecord]) -> list[dict]:
    """One row per execution, newest first: what the table shows."""
    rows = []
    for r in records:
        rows.append(
            {
                "execution": r.name,
                "image": (r.s3_key or "").rsplit("/", 1)[-1],
                "status": r.status,
                "outcome": r.outcome,
                "label": r.label,
                "confidence": round(r.confidence, 4) if r.confidence is not None else None,
                "truth": r.truth,
                "latency_s": round(r.seconds, 2) if r.seconds is not None else None,
                "error": r.error if r.outcome == "failed" else None,
                "retries": r.retries,
                "started": r.start.strftime("%H:%M:%S"),
            }
        )
    return rows


def counts(records: list[ExecutionRecord]) -> dict[str, int]:
    """Executions by outcome (succeeded, review, not_a_two_wheeler, failed, running)."""
    out = dict.fromkeys(OUTCOMES, 0)
    for r in records:
        out[r.outcome] += 1
    return out


# ------------------------------ One execution ------------------------------


@dataclass
class ExecutionDetail:
    """Everything the drill-down shows about one execution."""

    record: ExecutionRecord
    states: list[dict]
    image: bytes | None
    notification: dict | None  # the SNS message it published, if any
    review_message: dict | None  # what it sent to the review queue, if anything


def execution_detail(c, arn: str, truth: dict[str, str] | None = None) -> ExecutionDetail:
    """DescribeExecution + history: each state's input, output, attempts and errors."""
    described = c.sfn.describe_execution(executionArn=arn)
    events = history(c.sfn, arn)
    record = record_from_history(described, events)
    record.truth = (truth or {}).get(record.s3_key or "")
    states = []
    notification = review = None
    for v in state_visits(events):
        states.append(
            {
                "state": v.name,
                "type": v.kind,
                "resource": v.resource,
                "ms": round(v.seconds * 1000, 1) if v.seconds is not None else None,
                "attempts": v.attempts,
                "retries": v.retries,
                "errors": v.errors,
                "input": redact(v.input),
                "output": redact(v.output),
            }
        )
        params = v.parameters if isinstance(v.parameters, dict) else {}
        if v.resource == "sns:publish":
            notification = {
                "subject": params.get("Subject"),
                "message": params.get("Message"),
                "state": v.name,
            }
        elif v.resource and v.resource.startswith("sqs:"):
            review = params.get("MessageBody")
    image = record.image
    if image is None and record.s3_bucket and record.s3_key:
        image = read_object(c, record.s3_bucket, record.s3_key)
    return ExecutionDetail(record, states, image, notification, review)


def short_cause(cause: str | None, limit: int = 300) -> str:
    """A Lambda error's message without its stack trace (the cause is Lambda's error JSON)."""
    if not cause:
        return ""
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause[:limit]
    if isinstance(parsed, dict) and parsed.get("errorMessage"):
        return str(parsed["errorMessage"])[:limit]
    return cause[:limit]


def as_json_object(value: object) -> dict | list:
    """st.json needs an object or a list; a state's input may be a bare string or null."""
    return value if isinstance(value, (dict, list)) else {"value": value}


def read_object(c, bucket: str, key: str, limit: int = 6 * 1024 * 1024) -> bytes | None:
    """The object's bytes (what the workflow would read), or None if it is missing or huge."""
    try:
        response = c.s3.get_object(Bucket=bucket, Key=key)
    except Exception:  # missing key: the execution failed with ImageNotFound
        return None
    if int(response.get("ContentLength") or 0) > limit:
        return None
    return response["Body"].read()


def is_image(data: bytes | None) -> bool:
    """Whether Pillow can decode it (a text file or truncated PNG is shown as text)."""
    if not data:
        return False
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
        return True
    except Exception:
        return False


# ------------------------------ Threshold ------------------------------


def confidence_points(records: list[ExecutionRecord]) -> list[tuple[float, bool | None]]:
    """(confidence, correct) of each classified execution."""
    return [(r.confidence, r.correct) for r in records if r.confidence is not None]


def threshold_view(records: list[ExecutionRecord], threshold: float) -> dict:
    """Coverage and errors at ``threshold`` plus the sweep over 0.50-1.00 for a chart."""
    points = confidence_points(records)
    return {
        "at": threshold_effect(points, threshold),
        "sweep": [threshold_effect(points, t) for t in SWEEP],
    }


def timeline_png(records: list[ExecutionRecord], threshold: float) -> bytes | None:
    """The confidence-over-time graph of these executions with the chosen threshold."""
    scored = sorted((r for r in records if r.confidence is not None), key=lambda r: r.start)
    if not scored:
        return None
    return confidence_figure(
        [r.start for r in scored],
        [r.confidence for r in scored],
        threshold,
        f"{len(scored)} classified executions",
    )


# ------------------------------ Review queue and health ------------------------------


def queue_url(c, name: str) -> str | None:
    try:
        return c.sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except Exception:
        return None


def review_queue(c, peek: int = PEEK_MAX) -> dict:
    """The review queue's depth and a peek at its messages (left in the queue: visibility 0)."""
    url = queue_url(c, names().review_queue)
    if url is None:
        return {"url": None, "depth": 0, "in_flight": 0, "messages": []}
    attrs = c.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    received = c.sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=min(peek, PEEK_MAX),
        VisibilityTimeout=0,
        WaitTimeSeconds=0,
        AttributeNames=["SentTimestamp"],
    ).get("Messages", [])
    messages = []
    for m in received:
        try:
            body = json.loads(m["Body"])
        except ValueError:
            body = {"body": m["Body"]}
        sent = int(m.get("Attributes", {}).get("SentTimestamp", 0)) / 1000
        body["sent"] = datetime.fromtimestamp(sent).strftime("%H:%M:%S") if sent else None
        messages.append(body)
    return {
        "url": url,
        "depth": int(attrs.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "messages": messages,
    }


def _get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def stack_health(c) -> list[dict]:
    """Each part the workflow needs: up or not, and a detail line."""
    rows = []
    if config.TARGET == "local":
        for s in stack.status():
            rows.append({"part": s.name, "ok": s.healthy, "detail": s.url})
        health = _get_json(config.model_url() + "/health")
        if health:
            capture = health.get("capture")
            rows.append(
                {
                    "part": "data capture",
                    "ok": capture is not None,
                    "detail": (
                        # uploaded may exceed this run's records (spooled ones recovered)
                        f"{capture['records_uploaded']} records in {capture['destination']}, "
                        f"{capture['records_pending']} not there yet"
                    )
                    if capture
                    else "off (start the model server with SCONES_CAPTURE_ENABLED=1)",
                }
            )
    try:
        arn = image_machine_arn(c)
        rows.append({"part": "image workflow", "ok": True, "detail": arn})
    except Exception as err:
        rows.append({"part": "image workflow", "ok": False, "detail": str(err)})
    try:
        rows.append({"part": "threshold", "ok": True, "detail": f"{deployed_threshold(c):g}"})
    except Exception as err:
        rows.append({"part": "threshold", "ok": False, "detail": str(err)})
    for label, name in (
        ("review queue", names().review_queue),
        ("notifications queue", names().notifications_queue),
    ):
        url = queue_url(c, name)
        detail = url or "missing: run `scones deploy`"
        if url:
            depth = c.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"].get("ApproximateNumberOfMessages")
            detail = f"{depth} messages · {url}"
        rows.append({"part": label, "ok": url is not None, "detail": detail})
    return rows
