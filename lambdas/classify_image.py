"""Lambda: send the serialized image to the SageMaker endpoint and add its inferences."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from dataclasses import dataclass
from functools import cache

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

# default: scones-classifier. The SageMaker endpoint this function invokes.
ENDPOINT_NAME = os.environ.get("ENDPOINT_NAME") or "scones-classifier"
# default: bicycle,motorcycle. The model's classes in output order (model.json "classes").
CLASS_NAMES = [
    c.strip()
    for c in (os.environ.get("CLASS_NAMES") or "bicycle,motorcycle").split(",")
    if c.strip()
]
# default: 1 = no SDK retry: the state machine retries with backoff, visibly in its history.
INVOKE_MAX_ATTEMPTS = int(os.environ.get("INVOKE_MAX_ATTEMPTS") or 1)
# default: 60, SageMaker's own invocation timeout, in seconds.
INVOKE_TIMEOUT_S = float(os.environ.get("INVOKE_TIMEOUT_S") or 60)
# Error codes the runtime API answers while the endpoint is busy, starting or updating.
TRANSIENT_CODES = {
    "ThrottlingException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalDependencyException",
    "ModelNotReadyException",
}
MIME_BY_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}

LOG = logging.getLogger()
LOG.setLevel(os.environ.get("LOG_LEVEL") or "INFO")


class InvalidEvent(Exception):
    """The event carries no base64 image_data: send serialize_image_data's output."""


class EndpointUnavailable(Exception):
    """The endpoint cannot answer now (refused, timed out, throttled, 5xx); the caller retries."""


class EndpointNotFound(Exception):
    """No endpoint of that name: set ENDPOINT_NAME, or map the name with SCONES_ENDPOINT_ALIASES."""


class ImageRejected(Exception):
    """The model refused the image as invalid (a 4xx from the container)."""


class UnexpectedModelOutput(Exception):
    """The endpoint answered something other than one probability per class."""


@dataclass(frozen=True)
class ClassifyEvent:
    """The course's body after serialization: the image and where it came from."""

    body: dict
    image: bytes

    @classmethod
    def from_event(cls, event: dict) -> ClassifyEvent:
        """Accept {"statusCode", "body": {...}} (body may be JSON text) or the body itself."""
        body = event.get("body", event) if isinstance(event, dict) else None
        if isinstance(body, str):  # students' versions return json.dumps(event) as the body
            try:
                body = json.loads(body)
            except json.JSONDecodeError as err:
                raise InvalidEvent(f"body is text but not JSON: {body[:80]!r}") from err
        if not isinstance(body, dict) or not body.get("image_data"):
            raise InvalidEvent("no image_data in the event; pass serialize_image_data's output")
        try:
            image = base64.b64decode(body["image_data"], validate=True)
        except (binascii.Error, TypeError, ValueError) as err:
            raise InvalidEvent(f"image_data is not base64 ({err})") from err
        return cls(body=body, image=image)


@cache
def runtime_client():
    """One sagemaker-runtime client per runtime; AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME points it."""
    config = Config(
        connect_timeout=2,  # refused or unreachable should fail fast: the state machine retries
        read_timeout=INVOKE_TIMEOUT_S,
        retries={"total_max_attempts": INVOKE_MAX_ATTEMPTS, "mode": "standard"},
    )
    return boto3.client("sagemaker-runtime", config=config)


def invoke_endpoint(image: bytes, endpoint: str, client=None) -> list[float]:
    """The endpoint's probabilities for one image; transient failures raise EndpointUnavailable."""
    return invoke_with_ood(image, endpoint, client)[0]


def ood_score_of(custom_attributes: str | None) -> float | None:
    """The model's unknown-image score from CustomAttributes ("ood_score=0.87"), if it sent one."""
    for part in (custom_attributes or "").split(","):
        key, _, value = part.partition("=")
        if key.strip() == "ood_score":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def invoke_with_ood(image: bytes, endpoint: str, client=None) -> tuple[list[float], float | None]:
    """Probabilities and the unknown-image score (None from a model that sends none)."""
    client = client or runtime_client()
    content_type = next((m for k, m in MIME_BY_MAGIC.items() if image.startswith(k)), "image/png")
    try:
        response = client.invoke_endpoint(
            EndpointName=endpoint, ContentType=content_type, Accept="application/json", Body=image
        )
    except (BotoConnectionError, HTTPClientError) as err:  # refused, reset, timed out
        raise EndpointUnavailable(f"endpoint {endpoint} unreachable: {err}") from err
    except ClientError as err:
        named = _named_error(err, endpoint)
        if named is err:
            raise
        raise named from err
    raw = response["Body"].read()
    try:
        values = json.loads(raw)
        return [float(v) for v in values], ood_score_of(response.get("CustomAttributes"))
    except (ValueError, TypeError) as err:
        raise UnexpectedModelOutput(
            f"endpoint {endpoint} answered {raw[:120]!r}; expected a JSON list of probabilities"
        ) from err


def _named_error(err: ClientError, endpoint: str) -> Exception:
    """Map the runtime API's error to the name the state machine's Retry/Catch match."""
    error = err.response.get("Error", {})
    code = error.get("Code", "")
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    message = error.get("Message") or str(err)
    original = int(err.response.get("OriginalStatusCode") or 0)
    if code in TRANSIENT_CODES or status >= 500 or (code == "ModelError" and original >= 500):
        return EndpointUnavailable(f"endpoint {endpoint} failed ({code or status}): {message}")
    if code == "ModelError":
        return ImageRejected(f"endpoint {endpoint} refused the image: {message}")
    if code == "ValidationError" and "not found" in message.lower():
        return EndpointNotFound(
            f"{message} Set ENDPOINT_NAME, or serve this name (SCONES_ENDPOINT_ALIASES)"
        )
    return err


def classify(
    request: ClassifyEvent,
    endpoint: str = ENDPOINT_NAME,
    classes: list[str] | None = None,
    client=None,
) -> dict:
    """The body with inferences (class order), the top label and its confidence, and the model's
    ood_score when it sends one (the filter names such images NotATwoWheeler)."""
    inferences, ood_score = invoke_with_ood(request.image, endpoint, client)
    classes = classes or CLASS_NAMES
    if len(inferences) != len(classes):
        raise UnexpectedModelOutput(
            f"endpoint {endpoint} gave {len(inferences)} probabilities for {len(classes)} classes "
            f"({','.join(classes)}); set CLASS_NAMES from the model's model.json"
        )
    best = max(range(len(inferences)), key=inferences.__getitem__)
    body = {
        **request.body,
        "inferences": inferences,
        "label": classes[best],
        "confidence": inferences[best],
    }
    if ood_score is not None:
        body["ood_score"] = ood_score
    return body


def handler(event: dict, context) -> dict:
    """Entry point: serialize_image_data's output -> the same body plus inferences."""
    request = ClassifyEvent.from_event(event)
    return {"statusCode": 200, "body": classify(request)}
