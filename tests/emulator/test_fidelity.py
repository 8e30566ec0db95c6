"""Step Functions histories that the emulator plugin's fidelity patches bring in line with AWS."""

import json

import pytest

pytestmark = pytest.mark.integration


SQUARE = """
def handler(event, context):
    if event["n"] < 0:
        raise ValueError(f"negative: {event['n']}")
    return {"square": event["n"] ** 2}
"""


@pytest.fixture(scope="module")
def square(create_function) -> str:
    """A real Python function that raises ValueError on a negative n; its ARN."""
    made = create_function({"handler.py": SQUARE}, "handler.handler", Runtime="python3.13")
    return made["FunctionArn"]


def _runtime_error_text(aws_client, arn: str, payload: dict) -> str:
    """The function's error payload exactly as Lambda's Invoke API returns it."""
    answer = aws_client("lambda").invoke(FunctionName=arn, Payload=json.dumps(payload))
    assert answer.get("FunctionError") == "Unhandled"
    return answer["Payload"].read().decode()


def _as_request(text: str, cause: str) -> str:
    """`text` with its requestId replaced by the one in `cause` (each invoke has its own)."""
    return text.replace(json.loads(text)["requestId"], json.loads(cause)["requestId"])


def test_direct_lambda_arn_failure_carries_the_runtimes_own_text(run_machine, aws_client, square):
    """A Lambda ARN as Resource: the cause is the runtime's text (AWS: ", " and ": ")."""
    text = _runtime_error_text(aws_client, square, {"n": -2})
    definition = {"StartAt": "Square", "States": {"Square": {
        "Type": "Task", "Resource": square, "End": True}}}  # fmt: skip
    execution, events = run_machine(definition, {"n": -2})

    assert execution["status"] == "FAILED" and execution["error"] == "ValueError"
    assert [e["type"] for e in events] == [
        "ExecutionStarted", "TaskStateEntered", "LambdaFunctionScheduled",
        "LambdaFunctionStarted", "LambdaFunctionFailed", "ExecutionFailed",
    ]  # fmt: skip
    cause = events[4]["lambdaFunctionFailedEventDetails"]["cause"]
    assert cause == _as_request(text, cause)
    assert cause != json.dumps(json.loads(cause), separators=(",", ":"))  # not re-serialized
    assert execution["cause"] == cause
    assert json.loads(cause)["errorMessage"] == "negative: -2"


def test_lambda_invoke_failure_carries_the_payload_as_compact_json(run_machine, aws_client, square):
    """lambda:invoke parses the payload and writes it back compactly, as AWS does (unpatched)."""
    text = _runtime_error_text(aws_client, square, {"n": -3})
    definition = {"StartAt": "Square", "States": {"Square": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": square, "Payload.$": "$"}, "End": True}}}  # fmt: skip
    execution, events = run_machine(definition, {"n": -3})

    assert execution["status"] == "FAILED" and execution["error"] == "ValueError"
    failed = next(e for e in events if e["type"] == "TaskFailed")["taskFailedEventDetails"]
    compact = json.dumps(json.loads(text), separators=(",", ":"))
    assert failed["cause"] == _as_request(compact, failed["cause"])
    assert execution["cause"] == failed["cause"]


@pytest.mark.parametrize("integration", ["lambda:invoke", "function ARN"])
def test_missing_parameters_path_fails_the_execution_past_retry_and_catch(
    run_machine, aws_client, square, integration
):
    """States.Runtime: no TaskFailed, States.ALL neither retries nor catches it (AWS docs)."""
    retry_all = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2}]
    catch_all = [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]
    if integration == "lambda:invoke":
        payload = {"FunctionName": square, "Payload": {"n.$": "$.missing"}}
        task = {"Resource": "arn:aws:states:::lambda:invoke", "Parameters": payload}
    else:
        task = {"Resource": square, "Parameters": {"n.$": "$.missing"}}
    definition = {"StartAt": "Square", "States": {
        "Square": {"Type": "Task", **task, "Retry": retry_all, "Catch": catch_all, "End": True},
        "Caught": {"Type": "Pass", "End": True}}}  # fmt: skip
    execution, events = run_machine(definition, {"n": 3})

    assert execution["status"] == "FAILED" and execution["error"] == "States.Runtime"
    assert [e["type"] for e in events] == ["ExecutionStarted", "TaskStateEntered",
                                           "ExecutionFailed"]  # fmt: skip
    assert execution["cause"] == (
        "An error occurred while executing the state 'Square' (entered at the event id #2). "
        "The JSONPath '$.missing' specified for the field 'n.$' could not be found in the "
        """input '{"n":3}'"""
    )
    assert events[-1]["executionFailedEventDetails"]["cause"] == execution["cause"]
