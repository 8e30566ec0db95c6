"""Lambda: pass confident inferences on with their loading bay; stop the rest for review."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

# default: 0.93, the course's value. A top probability below this goes to human review.
THRESHOLD = float(os.environ.get("THRESHOLD") or 0.93)
# default: bicycle,motorcycle. Class names in output order, for bodies that carry no label.
CLASS_NAMES = [
    c.strip()
    for c in (os.environ.get("CLASS_NAMES") or "bicycle,motorcycle").split(",")
    if c.strip()
]
# default: {}. JSON map label -> loading bay, e.g. {"bicycle": "bay-1", "motorcycle": "bay-2"}.
LOADING_BAYS: dict[str, str] = json.loads(os.environ.get("LOADING_BAYS") or "{}")
# default: unassigned. The bay for a confident label LOADING_BAYS does not list.
DEFAULT_LOADING_BAY = os.environ.get("DEFAULT_LOADING_BAY") or "unassigned"

LOG = logging.getLogger()
LOG.setLevel(os.environ.get("LOG_LEVEL") or "INFO")


class InvalidEvent(Exception):
    """The event carries no inferences: pass classify_image's output."""


class ThresholdConfidenceNotMet(Exception):
    """The top probability is below THRESHOLD: the image needs a human look (review queue)."""


class NotATwoWheeler(Exception):
    """The model's unknown-image score alone keeps the image below THRESHOLD: it looks like none
    of the classes (a bus, a truck, not a vehicle); a person looks at it (review queue)."""


def unknown_cut(threshold: float, num_classes: int) -> float:
    """The ood_score u from which no image can pass: the model serves (1-u)*p + u/K."""
    return (1 - threshold) / (1 - 1 / num_classes)


@dataclass(frozen=True)
class FilterEvent:
    """The course's body after classification; inferences as floats in class order; ood_score
    when the model sent one (scones' classify step adds it; the course's does not)."""

    body: dict
    inferences: list[float]
    ood_score: float | None = None

    @classmethod
    def from_event(cls, event: dict) -> FilterEvent:
        """Accept {"statusCode", "body"} (body may be JSON text) or the body; inferences may be
        the endpoint's JSON text, as the course's classify Lambda passes it on."""
        body = event.get("body", event) if isinstance(event, dict) else None
        try:
            if isinstance(body, str):
                body = json.loads(body)
            inferences = body["inferences"]
            if isinstance(inferences, str):
                inferences = json.loads(inferences)
            values = [float(v) for v in inferences]
        except (TypeError, KeyError, ValueError) as err:
            raise InvalidEvent(
                f"no inferences in the event ({err!r}); pass classify's output"
            ) from err
        if not values:
            raise InvalidEvent("inferences is empty; the classify step did not run")
        try:
            ood = None if body.get("ood_score") is None else float(body["ood_score"])
        except (TypeError, ValueError) as err:
            raise InvalidEvent(f"ood_score {body.get('ood_score')!r} is not a number") from err
        return cls(body=body, inferences=values, ood_score=ood)


def route(
    request: FilterEvent,
    threshold: float = THRESHOLD,
    classes: list[str] | None = None,
    bays: dict[str, str] | None = None,
) -> dict:
    """The body plus label, confidence and loading bay; raises below the threshold:
    NotATwoWheeler when the unknown-image score alone explains it, else
    ThresholdConfidenceNotMet."""
    classes = classes or CLASS_NAMES
    bays = LOADING_BAYS if bays is None else bays
    best = max(range(len(request.inferences)), key=request.inferences.__getitem__)
    confidence = request.inferences[best]
    label = request.body.get("label") or (classes[best] if best < len(classes) else str(best))
    where = request.body.get("s3_key", "the image")
    # u = 0: the model has no doubt it is one of its classes (also where a threshold above 1
    # makes the cut negative); from the cut on, u alone rules the threshold out
    ood = request.ood_score or 0.0
    if (
        confidence < threshold
        and ood > 0
        and ood >= unknown_cut(threshold, len(request.inferences))
    ):
        raise NotATwoWheeler(
            f"{where}: unknown-image score {ood:.3f} (top class {label!r} at "
            f"{confidence:.4f}): it does not look like any of {', '.join(classes)}; sent to the "
            "review queue"
        )
    if confidence < threshold:
        raise ThresholdConfidenceNotMet(
            f"{where}: top class {label!r} has confidence {confidence:.4f}, below the threshold "
            f"{threshold}; sent to the review queue"
        )
    bay = bays.get(label)
    if bay is None:
        LOG.warning(
            "no loading bay for label %s in LOADING_BAYS; using %s", label, DEFAULT_LOADING_BAY
        )
        bay = DEFAULT_LOADING_BAY
    return {
        **request.body,
        "inferences": request.inferences,
        "label": label,
        "confidence": confidence,
        "loading_bay": bay,
    }


def handler(event: dict, context) -> dict:
    """Entry point: classify_image's output -> the same body plus its loading bay."""
    request = FilterEvent.from_event(event)
    return {"statusCode": 200, "body": route(request)}
