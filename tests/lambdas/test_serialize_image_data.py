"""serialize_image_data against the emulator's S3: the course's event and S3 event shapes."""

from __future__ import annotations

import base64
import uuid

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bucket(aws_client) -> str:
    """The bucket the events in tests/events name (created if the emulator lacks it)."""
    name = "scones-data"
    s3 = aws_client("s3")
    if name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def serialize(load_lambda, monkeypatch):
    monkeypatch.delenv("MAX_IMAGE_BYTES", raising=False)
    return load_lambda("serialize_image_data")


def test_serialize_returns_course_body_for_a_png(
    serialize, event, png, bucket, aws_client, context
):
    request = event("serialize_image_data")
    data = png()
    aws_client("s3").put_object(Bucket=bucket, Key=request["s3_key"], Body=data)

    result = serialize.handler(request, context)

    assert result["statusCode"] == 200
    body = result["body"]
    assert set(body) == {"image_data", "s3_bucket", "s3_key", "inferences"}
    assert base64.b64decode(body["image_data"]) == data
    assert (body["s3_bucket"], body["s3_key"]) == (bucket, request["s3_key"])
    assert body["inferences"] == []


def test_serialize_accepts_a_jpeg(serialize, png, bucket, aws_client, context):
    key = f"test/{uuid.uuid4().hex}.jpg"
    data = png(fmt="JPEG")
    aws_client("s3").put_object(Bucket=bucket, Key=key, Body=data)

    body = serialize.handler({"s3_bucket": bucket, "s3_key": key}, context)["body"]

    assert base64.b64decode(body["image_data"]) == data


def test_serialize_reads_an_eventbridge_object_created_event(
    serialize, event, png, bucket, aws_client, context
):
    request = event("s3_object_created")
    key = request["detail"]["object"]["key"]
    aws_client("s3").put_object(Bucket=bucket, Key=key, Body=png())

    body = serialize.handler(request, context)["body"]

    assert body["s3_key"] == key


def test_serialize_decodes_the_url_encoded_key_of_an_s3_notification(
    serialize, event, png, bucket, aws_client, context
):
    aws_client("s3").put_object(Bucket=bucket, Key="incoming/red flower(2).png", Body=png())

    body = serialize.handler(event("s3_notification"), context)["body"]

    assert body["s3_key"] == "incoming/red flower(2).png"


def test_serialize_refuses_an_object_that_is_not_an_image(serialize, bucket, aws_client, context):
    key = f"test/{uuid.uuid4().hex}.png"  # the name says png; the bytes do not
    aws_client("s3").put_object(Bucket=bucket, Key=key, Body=b"index\tlabel\tfile\n")

    with pytest.raises(Exception) as err:
        serialize.handler({"s3_bucket": bucket, "s3_key": key}, context)

    assert type(err.value).__name__ == "NotAnImage"  # the state machine matches on this name


def test_serialize_missing_key_raises_image_not_found(serialize, bucket, context):
    with pytest.raises(Exception) as err:
        serialize.handler({"s3_bucket": bucket, "s3_key": f"nope/{uuid.uuid4().hex}"}, context)

    assert type(err.value).__name__ == "ImageNotFound"
    assert "does not exist" in str(err.value)


def test_serialize_refuses_an_image_over_the_size_limit(
    load_lambda, monkeypatch, png, bucket, aws_client, context
):
    monkeypatch.setenv("MAX_IMAGE_BYTES", "64")
    serialize = load_lambda("serialize_image_data")
    key = f"test/{uuid.uuid4().hex}.png"
    aws_client("s3").put_object(Bucket=bucket, Key=key, Body=png(size=64))

    with pytest.raises(Exception) as err:
        serialize.handler({"s3_bucket": bucket, "s3_key": key}, context)

    assert type(err.value).__name__ == "ImageTooLarge"


@pytest.mark.parametrize("bad", [{}, {"s3_bucket": "scones-data"}, {"image_data": ""}, []])
def test_serialize_refuses_an_event_without_bucket_and_key(serialize, bad, context):
    with pytest.raises(Exception) as err:
        serialize.handler(bad, context)

    assert type(err.value).__name__ == "InvalidEvent"
