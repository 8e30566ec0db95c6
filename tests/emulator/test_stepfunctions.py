"""Step Functions on the emulator running real Lambda code: Retry, Catch -> SNS, Map."""

import json
import uuid

import pytest

pytestmark = pytest.mark.integration


# Fails with FlakyError until it has been called `fail_times` times for this `key` (kept in S3,
# so the count survives a fresh environment), then succeeds.
FLAKY = """
import boto3

class FlakyError(Exception):
    pass

def handler(event, context):
    s3 = boto3.client("s3")
    key = "calls/" + event["key"]
    try:
        calls = int(s3.get_object(Bucket=event["bucket"], Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        calls = 0
    s3.put_object(Bucket=event["bucket"], Key=key, Body=str(calls + 1).encode())
    if calls < event["fail_times"]:
        raise FlakyError(f"call {calls + 1} fails")
    return {"calls": calls + 1}
"""

SQUARE = """
def handler(event, context):
    if event["n"] < 0:
        raise ValueError("negative")
    return {"n": event["n"], "square": event["n"] ** 2}
"""


@pytest.fixture(scope="module")
def functions(aws_client, create_function):
    """Two real Python functions and a bucket they keep state in."""
    s3 = aws_client("s3")
    bucket = f"sfn-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    arns = {
        name: create_function(
            {"handler.py": source}, "handler.handler", Runtime="python3.13", Timeout=30
        )["FunctionArn"]
        for name, source in (("flaky", FLAKY), ("square", SQUARE))
    }
    return {"bucket": bucket, **arns}


def _types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def test_retry_retries_a_failing_lambda_until_it_succeeds(run_machine, aws_client, functions):
    definition = {
        "StartAt": "Flaky",
        "States": {
            "Flaky": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": functions["flaky"], "Payload.$": "$"},
                "OutputPath": "$.Payload",
                "Retry": [
                    {
                        "ErrorEquals": ["FlakyError"],
                        "IntervalSeconds": 1,
                        "BackoffRate": 1.0,
                        "MaxAttempts": 3,
                    }
                ],
                "End": True,
            }
        },
    }
    payload = {"bucket": functions["bucket"], "key": uuid.uuid4().hex, "fail_times": 2}
    execution, events = run_machine(definition, payload)
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"]) == {"calls": 3}
    types = _types(events)
    # lambda:invoke is a service integration: its events are Task*, not LambdaFunction*
    assert types.count("TaskFailed") == 2
    assert types.count("TaskSucceeded") == 1
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"


def test_catch_routes_the_error_to_an_sns_publish_task(run_machine, aws_client, functions):
    sns, sqs = aws_client("sns"), aws_client("sqs")
    topic = sns.create_topic(Name=f"alerts-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"alerts-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    definition = {
        "StartAt": "Square",
        "States": {
            "Square": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": functions["square"], "Payload.$": "$"},
                "OutputPath": "$.Payload",
                "Catch": [
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Notify"}
                ],
                "End": True,
            },
            "Notify": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": topic, "Message.$": "$.error"},
                "Next": "Failed",
            },
            "Failed": {"Type": "Fail", "Error": "SquareFailed", "Cause": "see the notification"},
        },
    }
    execution, events = run_machine(definition, {"n": -3})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "SquareFailed"
    assert "TaskSucceeded" in _types(events)  # the sns:publish task ran
    message = None
    for _ in range(20):
        got = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
        if got:
            message = json.loads(got[0]["Body"])
            break
    assert message is not None, "no SNS notification reached the subscribed queue"
    assert message["Error"] == "ValueError"
    assert json.loads(message["Cause"])["errorMessage"] == "negative"


def test_map_with_max_concurrency_runs_every_item(run_machine, aws_client, functions):
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 2,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Square",
                    "States": {
                        "Square": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": functions["square"], "Payload.$": "$"},
                            "OutputPath": "$.Payload",
                            "End": True,
                        }
                    },
                },
                "End": True,
            }
        },
    }
    items = [{"n": n} for n in range(6)]
    execution, events = run_machine(definition, {"items": items})
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"]) == [{"n": n, "square": n * n} for n in range(6)]
    types = _types(events)
    assert types.count("MapIterationSucceeded") == 6
    assert "MapStateStarted" in types and "MapStateSucceeded" in types
