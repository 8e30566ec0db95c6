"""The emulator services the workflow stands on: S3, SNS -> SQS, S3 -> EventBridge -> SQS."""

import json
import time
import uuid

import pytest

pytestmark = pytest.mark.integration


def _receive(sqs, queue_url: str, want: int = 1, seconds: float = 20) -> list[dict]:
    """Messages from a queue, polling until `want` arrived or the time is up."""
    messages: list[dict] = []
    deadline = time.monotonic() + seconds
    while len(messages) < want and time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages += got.get("Messages", [])
    return messages


def _queue(sqs, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def test_s3_put_then_get_returns_the_same_bytes(aws_client):
    s3 = aws_client("s3")
    bucket = f"svc-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    payload = bytes(range(256)) * 64
    s3.put_object(Bucket=bucket, Key="incoming/x.bin", Body=payload)
    assert s3.get_object(Bucket=bucket, Key="incoming/x.bin")["Body"].read() == payload
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="incoming/missing.bin")


def test_sns_publish_is_delivered_to_a_subscribed_sqs_queue(aws_client):
    sns, sqs = aws_client("sns"), aws_client("sqs")
    topic = sns.create_topic(Name=f"svc-{uuid.uuid4().hex[:8]}")["TopicArn"]
    url, arn = _queue(sqs, f"svc-{uuid.uuid4().hex[:8]}")
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    sns.publish(TopicArn=topic, Message=json.dumps({"hello": "scones"}), Subject="test")
    messages = _receive(sqs, url)
    assert [json.loads(m["Body"]) for m in messages] == [{"hello": "scones"}]


def test_s3_upload_triggers_an_eventbridge_rule_into_sqs(aws_client):
    s3, events, sqs = aws_client("s3"), aws_client("events"), aws_client("sqs")
    bucket = f"svc-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    url, arn = _queue(sqs, f"svc-{uuid.uuid4().hex[:8]}")
    rule = f"svc-{uuid.uuid4().hex[:8]}"
    events.put_rule(
        Name=rule,
        EventPattern=json.dumps(
            {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": [bucket]},
                    "object": {"key": [{"prefix": "incoming/"}]},
                },
            }
        ),
    )
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": arn}])
    s3.put_object(Bucket=bucket, Key="other/ignored.png", Body=b"x")
    s3.put_object(Bucket=bucket, Key="incoming/bike.png", Body=b"x")
    messages = _receive(sqs, url, want=2, seconds=10)
    keys = [json.loads(m["Body"])["detail"]["object"]["key"] for m in messages]
    assert keys == ["incoming/bike.png"]  # the rule's prefix filter kept the other key out
