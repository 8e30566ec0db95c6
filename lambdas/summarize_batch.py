"""Lambda: count a batch's per-image outcomes by outcome, label and error."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass

# The image workflow's error for low confidence: those items wait in the review queue.
REVIEW_ERROR = "ThresholdConfidenceNotMet"
# Its error when the model says the image is none of its classes: in the review queue too.
UNKNOWN_ERROR = "NotATwoWheeler"
# What a Map iteration that failed outright (no record of its own) is counted as.
ITERATION_FAILED = "MapIterationFailed"

LOG = logging.getLogger()
LOG.setLevel(os.environ.get("LOG_LEVEL") or "INFO")


class InvalidEvent(Exception):
    """The event has no "results" list: pass the batch Map's output."""


@dataclass(frozen=True)
class SummarizeEvent:
    """The batch's input and the Map's list of per-image records."""

    s3_bucket: str
    prefix: str
    results: list[dict]

    @classmethod
    def from_event(cls, event: dict) -> SummarizeEvent:
        results = event.get("results") if isinstance(event, dict) else None
        if not isinstance(results, list):
            raise InvalidEvent("no results list in the event; pass the batch Map's output")
        return cls(str(event.get("s3_bucket", "")), str(event.get("prefix", "")), results)


def outcome_of(record: dict) -> str:
    """succeeded, review (low confidence, queued for a person), not_a_two_wheeler (queued too)
    or failed."""
    if record.get("outcome") == "succeeded":
        return "succeeded"
    if record.get("error") == UNKNOWN_ERROR:
        return "not_a_two_wheeler"
    return "review" if record.get("error") == REVIEW_ERROR else "failed"


def summarize(request: SummarizeEvent) -> dict:
    """Counts per outcome, per label (confident results) and per error, plus every item."""
    records = [r if isinstance(r, dict) else {"error": ITERATION_FAILED} for r in request.results]
    items = [{**r, "outcome": outcome_of(r)} for r in records]
    outcomes = Counter({"succeeded": 0, "review": 0, "not_a_two_wheeler": 0, "failed": 0})
    outcomes.update(item["outcome"] for item in items)
    labels = Counter(item.get("label") for item in items if item["outcome"] == "succeeded")
    errors = Counter(
        item.get("error") or "unknown" for item in items if item["outcome"] != "succeeded"
    )
    return {
        "s3_bucket": request.s3_bucket,
        "prefix": request.prefix,
        "total": len(items),
        "outcomes": dict(outcomes),
        "labels": dict(labels),
        "errors": dict(errors),
        "items": items,
    }


def handler(event: dict, context) -> dict:
    """Entry point: {"s3_bucket", "prefix", "results": [...]} -> the batch summary."""
    return summarize(SummarizeEvent.from_event(event))
