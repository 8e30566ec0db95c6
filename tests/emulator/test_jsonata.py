"""Step Functions with QueryLanguage JSONata run on the emulator without Java (jsonata-python)."""

import json
import time
import uuid

import pytest

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::000000000000:role/scones-test-jsonata"

SCORE = """
def handler(event, context):
    return {"label": event["label"], "scores": [s * event["scale"] for s in event["raw"]]}
"""


def _definition(function_arn: str) -> dict:
    """Task with Arguments/Output, Assign, a Choice on a Condition, then Pass or Fail."""
    return {
        "QueryLanguage": "JSONata",
        "StartAt": "Score",
        "States": {
            "Score": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Arguments": {
                    "FunctionName": function_arn,
                    "Payload": {
                        "label": "{% $uppercase($states.input.label) %}",
                        "raw": "{% $states.input.raw %}",
                        "scale": 0.01,
                    },
                },
                "Assign": {"threshold": "{% $states.input.threshold %}"},
                "Output": {
                    "label": "{% $states.result.Payload.label %}",
                    "top": "{% $max($states.result.Payload.scores) %}",
                    "count": "{% $count($states.result.Payload.scores) %}",
                },
                "Next": "Confident?",
            },
            "Confident?": {
                "Type": "Choice",
                "Choices": [{"Condition": "{% $states.input.top >= $threshold %}", "Next": "Keep"}],
                "Default": "Review",
            },
            "Keep": {
                "Type": "Pass",
                "Output": {
                    "label": "{% $states.input.label %}",
                    "top": "{% $states.input.top %}",
                    "summary": "{% $states.input.label & ' x' & $string($states.input.count) %}",
                    "threshold": "{% $threshold %}",
                },
                "End": True,
            },
            "Review": {
                "Type": "Fail",
                "Error": "LowConfidence",
                "Cause": "{% 'top score ' & $string($states.input.top) %}",
            },
        },
    }


@pytest.fixture(scope="module")
def state_machine(aws_client, create_function) -> str:
    name = f"jsonata-{uuid.uuid4().hex[:8]}"
    function_arn = create_function(
        {"app.py": SCORE},
        "app.handler",
        FunctionName=name,
        Role=ROLE,
        Runtime="python3.12",
        Timeout=10,
    )["FunctionArn"]
    return aws_client("stepfunctions").create_state_machine(
        name=name, definition=json.dumps(_definition(function_arn)), roleArn=ROLE
    )["stateMachineArn"]


def _run(sfn, state_machine_arn: str, event: dict, seconds: float = 60) -> dict:
    execution = sfn.start_execution(stateMachineArn=state_machine_arn, input=json.dumps(event))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.2)
    pytest.fail(f"execution still running after {seconds} s")


def test_jsonata_arguments_output_and_choice_succeed(aws_client, state_machine):
    event = {"label": "bicycle", "raw": [12, 97, 40], "threshold": 0.9}
    result = _run(aws_client("stepfunctions"), state_machine, event)
    assert result["status"] == "SUCCEEDED", result
    assert json.loads(result["output"]) == {
        "label": "BICYCLE",
        "top": 0.97,
        "summary": "BICYCLE x3",
        "threshold": 0.9,
    }


def test_jsonata_choice_default_reaches_fail_with_evaluated_cause(aws_client, state_machine):
    event = {"label": "motorcycle", "raw": [12, 40], "threshold": 0.9}
    result = _run(aws_client("stepfunctions"), state_machine, event)
    assert result["status"] == "FAILED"
    assert result["error"] == "LowConfidence"
    assert result["cause"] == "top score 0.4"


def test_jsonata_undefined_result_is_a_query_evaluation_error(aws_client):
    sfn = aws_client("stepfunctions")
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Missing",
        "States": {
            "Missing": {"Type": "Pass", "Output": "{% $states.input.nothere %}", "End": True}
        },
    }
    arn = sfn.create_state_machine(
        name=f"jsonata-missing-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn=ROLE,
    )["stateMachineArn"]
    result = _run(sfn, arn, {"present": 1})
    assert result["status"] == "FAILED"
    assert result["error"] == "States.QueryEvaluationError"
