"""Lambda: read one image from S3 and return it base64-encoded in the course's body shape."""

from __future__ import annotations

import base64
import logging
import os
from dataclasses import dataclass
from functools import cache
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# default: 6291456 (6 MB), SageMaker's InvokeEndpoint payload limit, in bytes.
MAX_IMAGE_BYTES = int(os.environ.get("MAX_IMAGE_BYTES") or 6 * 1024 * 1024)
# What a PNG or JPEG file starts with (https://www.w3.org/TR/png/#5PNG-file-signature).
IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}

LOG = logging.getLogger()
LOG.setLevel(os.environ.get("LOG_LEVEL") or "INFO")


class InvalidEvent(Exception):
    """The event names no S3 object: send {"s3_bucket": ..., "s3_key": ...} or an S3 event."""


class ImageNotFound(Exception):
    """The bucket or key does not exist (S3 NoSuchKey / NoSuchBucket)."""


class NotAnImage(Exception):
    """The object is not a PNG or JPEG file (checked by its first bytes, not its name)."""


class ImageTooLarge(Exception):
    """The object is larger than MAX_IMAGE_BYTES, which the endpoint would refuse."""


@dataclass(frozen=True)
class SerializeEvent:
    """Where the image is; parsed from the course's event or an S3 / EventBridge event."""

    s3_bucket: str
    s3_key: str

    @classmethod
    def from_event(cls, event: dict) -> SerializeEvent:
        """Accept {"s3_bucket", "s3_key"} (the course), EventBridge "Object Created", S3 Records."""
        if not isinstance(event, dict):
            raise InvalidEvent(f"the event must be a JSON object, got {type(event).__name__}")
        body = event.get("body")
        if isinstance(body, dict) and "s3_key" in body:
            event = body  # the course's {"statusCode", "body"} wrapper
        detail = event.get("detail")
        if isinstance(detail, dict) and "object" in detail:  # EventBridge: key is not URL-encoded
            bucket, key = detail.get("bucket", {}).get("name"), detail["object"].get("key")
        elif event.get("Records"):  # S3 notification: key is URL-encoded ("a b.png" -> "a+b.png")
            s3 = event["Records"][0].get("s3", {})
            bucket = s3.get("bucket", {}).get("name")
            key = unquote_plus(s3.get("object", {}).get("key") or "")
        else:
            bucket, key = event.get("s3_bucket"), event.get("s3_key")
        if not bucket or not key:
            raise InvalidEvent(
                f"no bucket/key in the event (keys: {sorted(event)}); send "
                '{"s3_bucket": "...", "s3_key": "..."} or an S3 Object Created event'
            )
        return cls(s3_bucket=str(bucket), s3_key=str(key))


@cache
def s3_client():
    """One client per runtime, reused by warm invocations; finds LocalStack via AWS_ENDPOINT_URL."""
    return boto3.client("s3", config=Config(retries={"max_attempts": 3, "mode": "standard"}))


def image_type(data: bytes) -> str | None:
    """The image's MIME type from its magic bytes, or None if it is not a PNG or JPEG."""
    return next((mime for magic, mime in IMAGE_MAGIC.items() if data.startswith(magic)), None)


def read_image(bucket: str, key: str, client=None, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The object's bytes once checked to be a PNG/JPEG of at most ``max_bytes``."""
    client = client or s3_client()
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
            raise ImageNotFound(f"s3://{bucket}/{key} does not exist; upload it first") from err
        raise
    size = int(response["ContentLength"])
    if size > max_bytes:  # headers come first: a huge body is never read into memory
        response["Body"].close()
        raise ImageTooLarge(
            f"s3://{bucket}/{key} is {size} bytes; the limit is {max_bytes} (MAX_IMAGE_BYTES)"
        )
    data = response["Body"].read()
    if image_type(data) is None:
        raise NotAnImage(
            f"s3://{bucket}/{key} is not a PNG or JPEG (starts with {data[:8]!r}); "
            "only images can be classified"
        )
    return data


def serialize(request: SerializeEvent, client=None) -> dict:
    """The course's body: the image as base64 text, where it came from, no inferences yet."""
    data = read_image(request.s3_bucket, request.s3_key, client)
    return {
        "image_data": base64.b64encode(data).decode("ascii"),
        "s3_bucket": request.s3_bucket,
        "s3_key": request.s3_key,
        "inferences": [],
    }


def handler(event: dict, context) -> dict:
    """Entry point: {"image_data": "", "s3_bucket", "s3_key"} -> {"statusCode": 200, "body"}."""
    request = SerializeEvent.from_event(event)
    return {"statusCode": 200, "body": serialize(request)}
