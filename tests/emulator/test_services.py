"""S3 through our plugin's durable object store: bytes in, the same bytes out, a named miss.

(SNS -> SQS and S3 -> EventBridge were tested here on bare resources: that tested LocalStack
itself. tests/scones/test_workflow.py covers both through the deployed workflow: notifications,
the review queue, and an upload under incoming/ starting an execution while one elsewhere does not.)
"""

import uuid

import pytest

pytestmark = pytest.mark.integration


def test_s3_put_then_get_returns_the_same_bytes(aws_client):
    s3 = aws_client("s3")
    bucket = f"svc-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    payload = bytes(range(256)) * 64
    s3.put_object(Bucket=bucket, Key="incoming/x.bin", Body=payload)
    assert s3.get_object(Bucket=bucket, Key="incoming/x.bin")["Body"].read() == payload
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="incoming/missing.bin")
