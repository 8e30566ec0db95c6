"""Benchmark: Step Functions throughput on a running emulator (prints figures, asserts nothing).

Runs a JSONPath state machine shaped like the scones workflow (Parameters, ResultSelector,
ResultPath, OutputPath, Choice), with --jsonata its JSONata twin, and with --lambda three
lambda:invoke tasks like the workflow's (an echo function). Compare the speedups (speedups.py)
by restarting the emulator with SCONES_EMULATOR_SPEEDUPS=0 and 1::

    AWS_ENDPOINT_URL=http://127.0.0.1:4566 python docker/scones_emulator/bench_stepfunctions.py
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
import uuid
import zipfile

import boto3

ROLE = "arn:aws:iam::000000000000:role/scones-bench"

JSONPATH_MACHINE = {
    "StartAt": "Serialize",
    "States": {
        "Serialize": {
            "Type": "Pass",
            "Parameters": {"s3_key.$": "$.s3_key", "bucket.$": "$.s3_bucket", "image_data": "AAAA"},
            "ResultPath": "$.body",
            "Next": "Classify",
        },
        "Classify": {
            "Type": "Pass",
            "Parameters": {"inferences": [0.97, 0.03], "key.$": "$.body.s3_key"},
            "ResultSelector": {"inferences.$": "$.inferences", "top.$": "$.inferences[0]"},
            "ResultPath": "$.body.result",
            "Next": "Confident?",
        },
        "Confident?": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.body.result.top", "NumericGreaterThanEquals": 0.93, "Next": "Keep"}
            ],
            "Default": "Review",
        },
        "Keep": {"Type": "Pass", "OutputPath": "$.body.result", "End": True},
        "Review": {"Type": "Fail", "Error": "LowConfidence"},
    },
}

JSONATA_MACHINE = {
    "QueryLanguage": "JSONata",
    "StartAt": "Serialize",
    "States": {
        "Serialize": {
            "Type": "Pass",
            "Output": {
                "s3_key": "{% $states.input.s3_key %}",
                "bucket": "{% $states.input.s3_bucket %}",
                "image_data": "AAAA",
            },
            "Next": "Classify",
        },
        "Classify": {
            "Type": "Pass",
            "Output": {"inferences": [0.97, 0.03], "top": "{% 0.97 %}"},
            "Next": "Confident?",
        },
        "Confident?": {
            "Type": "Choice",
            "Choices": [{"Condition": "{% $states.input.top >= 0.93 %}", "Next": "Keep"}],
            "Default": "Review",
        },
        "Keep": {"Type": "Pass", "End": True},
        "Review": {"Type": "Fail", "Error": "LowConfidence"},
    },
}

ECHO = "def handler(event, context):\n    return {**event, 'seen': event.get('seen', 0) + 1}\n"


def lambda_machine(function_arn: str) -> dict:
    """Three lambda:invoke tasks chained like the workflow's serialize -> classify -> filter."""
    names = ["Serialize", "Classify", "Filter"]
    states = {}
    for index, name in enumerate(names):
        states[name] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
            "OutputPath": "$.Payload",
            **({"End": True} if index == len(names) - 1 else {"Next": names[index + 1]}),
        }
    return {"StartAt": names[0], "States": states}


def create_echo(session_kwargs: dict) -> tuple[str, str]:
    """An echo Lambda (python3.13); returns (name, ARN)."""
    lam = boto3.client("lambda", **session_kwargs)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", ECHO)
    name = f"bench-echo-{uuid.uuid4().hex[:8]}"
    arn = lam.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Handler="handler.handler",
        Role="arn:aws:iam::000000000000:role/scones-bench-lambda",
        Code={"ZipFile": buffer.getvalue()},
        Timeout=30,
    )["FunctionArn"]
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    return name, arn


def run(sfn, definition: dict, executions: int, timeout_s: float = 300) -> dict[str, float]:
    """Start `executions` at once, wait for all; return wall time and per-execution figures."""
    arn = sfn.create_state_machine(
        name=f"bench-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    event = json.dumps({"s3_key": "test/bicycle_s_000017.png", "s3_bucket": "bench"})
    sfn.start_execution(stateMachineArn=arn, input=event)  # warm-up: first parse, imports
    time.sleep(1)
    began = time.perf_counter()
    started = [
        sfn.start_execution(stateMachineArn=arn, input=event)["executionArn"]
        for _ in range(executions)
    ]
    durations: list[float] = []
    pending = set(started)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for execution_arn in list(pending):
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                pending.discard(execution_arn)
                durations.append((described["stopDate"] - described["startDate"]).total_seconds())
        time.sleep(0.05)
    wall = time.perf_counter() - began
    sfn.delete_state_machine(stateMachineArn=arn)
    durations.sort()
    return {
        "executions": len(durations),
        "wall_s": wall,
        "per_s": len(durations) / wall,
        "median_ms": 1000 * durations[len(durations) // 2] if durations else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--executions", type=int, default=40)
    parser.add_argument("--jsonata", action="store_true", help="also run the JSONata twin")
    parser.add_argument("--lambda", dest="with_lambda", action="store_true", help="3 Lambda tasks")
    args = parser.parse_args()
    session_kwargs = {
        "endpoint_url": os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        "region_name": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    }
    sfn = boto3.client("stepfunctions", **session_kwargs)
    machines = [("jsonpath", JSONPATH_MACHINE)]
    if args.jsonata:
        machines.append(("jsonata", JSONATA_MACHINE))
    echo = None
    if args.with_lambda:
        echo = create_echo(session_kwargs)
        machines.append(("lambda x3", lambda_machine(echo[1])))
    for label, definition in machines:
        figures = run(sfn, definition, args.executions)
        print(
            f"{label:9s} {figures['executions']:4.0f} executions in {figures['wall_s']:6.2f} s"
            f"  = {figures['per_s']:6.1f}/s   median execution {figures['median_ms']:7.1f} ms"
        )
    if echo:
        boto3.client("lambda", **session_kwargs).delete_function(FunctionName=echo[0])


if __name__ == "__main__":
    main()
