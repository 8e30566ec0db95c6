"""Step Functions histories that the emulator plugin's fidelity patches bring in line with AWS."""

import json
import uuid

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


# ------------------------------ lambda:invoke's whole answer ------------------------------


def test_lambda_invoke_result_carries_the_sdk_metadata_like_aws(run_machine, aws_client, square):
    """No OutputPath: the state's output is Invoke's answer as AWS's SDK saw it (AWS's example
    in "Invoke an AWS Lambda function with Step Functions" and recorded executions)."""
    raw = aws_client("lambda").invoke(FunctionName=square, Payload=b'{"n": 4}')["Payload"].read()
    definition = {"StartAt": "Square", "States": {"Square": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": square, "Payload.$": "$"}, "End": True}}}  # fmt: skip
    execution, _events = run_machine(definition, {"n": 4})

    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    assert list(output) == ["ExecutedVersion", "Payload", "SdkHttpMetadata",
                            "SdkResponseMetadata", "StatusCode"]  # fmt: skip
    assert output["ExecutedVersion"] == "$LATEST" and output["StatusCode"] == 200
    assert output["Payload"] == {"square": 16}
    http = output["SdkHttpMetadata"]
    assert list(http) == ["AllHttpHeaders", "HttpHeaders", "HttpStatusCode"]
    assert http["HttpStatusCode"] == 200
    assert list(http["AllHttpHeaders"]) == [
        "X-Amz-Executed-Version", "x-amzn-Remapped-Content-Length", "Connection",
        "x-amzn-RequestId", "Content-Length", "Date", "X-Amzn-Trace-Id", "Content-Type",
    ]  # fmt: skip
    assert list(http["HttpHeaders"]) == [
        "Connection", "Content-Length", "Content-Type", "Date", "X-Amz-Executed-Version",
        "x-amzn-Remapped-Content-Length", "x-amzn-RequestId", "X-Amzn-Trace-Id",
    ]  # fmt: skip
    assert {k: [v] for k, v in http["HttpHeaders"].items()} == http["AllHttpHeaders"]
    assert http["HttpHeaders"]["Content-Length"] == str(len(raw))  # the runtime's own bytes
    assert http["HttpHeaders"]["X-Amz-Executed-Version"] == "$LATEST"
    request_id = output["SdkResponseMetadata"]["RequestId"]
    assert http["HttpHeaders"]["x-amzn-RequestId"] == request_id
    assert len(request_id) == 36  # a UUID, as Lambda's request ids are


def test_direct_function_arn_result_stays_the_payload(run_machine, square):
    definition = {"StartAt": "Square", "States": {"Square": {
        "Type": "Task", "Resource": square, "End": True}}}  # fmt: skip
    execution, _events = run_machine(definition, {"n": 5})
    assert json.loads(execution["output"]) == {"square": 25}


# ------------------------------ /var/task in stack traces ------------------------------


def test_stack_traces_name_var_task_like_aws(run_machine, aws_client, square):
    """AWS unpacks the code in /var/task: tracebacks say File "/var/task/handler.py"."""
    text = _runtime_error_text(aws_client, square, {"n": -1})
    assert json.loads(text)["stackTrace"][-1].startswith('  File "/var/task/handler.py", line 4,')
    definition = {"StartAt": "Square", "States": {"Square": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": square, "Payload.$": "$"}, "End": True}}}  # fmt: skip
    execution, _events = run_machine(definition, {"n": -1})
    trace = json.loads(execution["cause"])["stackTrace"]
    assert trace[-1] == (
        '  File "/var/task/handler.py", line 4, in handler\n'
        "    raise ValueError(f\"negative: {event['n']}\")\n"
    )
    assert all("/.scones/" not in line for line in trace)


# ------------------------------ Distributed Map: tolerated failures ------------------------


def _distributed(square: str, **tolerance) -> dict:
    """A Distributed Map squaring each item (negative items fail), caught by a Pass state."""
    return {"StartAt": "Squares", "States": {
        "Squares": {
            "Type": "Map", "Label": "squares", **tolerance,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Square", "States": {"Square": {
                    "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": square, "Payload": {"n.$": "$"}},
                    "OutputPath": "$.Payload", "End": True}}},
            "Catch": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"],
                       "Next": "TooManyFailed"}],
            "End": True},
        "TooManyFailed": {"Type": "Pass", "End": True}}}  # fmt: skip


@pytest.mark.parametrize(
    "tolerance",
    [{}, {"ToleratedFailureCount": 0}, {"ToleratedFailurePercentage": 33},
     {"ToleratedFailureCount": 5, "ToleratedFailurePercentage": 10.0}],
)  # fmt: skip
def test_distributed_map_over_its_tolerance_fails_with_exceed_threshold(
    run_machine, aws_client, square, tolerance
):
    """One child of three fails: over the threshold (none declared = 0; either threshold
    exceeded fails) the Map fails with States.ExceedToleratedFailureThreshold; Catch takes it."""
    execution, events = run_machine(_distributed(square, **tolerance), [1, -2, 3])

    assert execution["status"] == "SUCCEEDED"  # the Catch took it
    caught = json.loads(execution["output"])
    assert caught["Error"] == "States.ExceedToleratedFailureThreshold"
    types = [e["type"] for e in events]
    assert types[types.index("MapRunStarted"):] == [
        "MapRunStarted", "MapRunFailed", "MapStateFailed", "MapStateExited", "PassStateEntered",
        "PassStateExited", "ExecutionSucceeded",
    ]  # fmt: skip
    failed = next(e for e in events if e["type"] == "MapRunFailed")["mapRunFailedEventDetails"]
    assert failed["error"] == "States.ExceedToleratedFailureThreshold"
    map_run = next(e for e in events if e["type"] == "MapRunStarted")
    run_arn = map_run["mapRunStartedEventDetails"]["mapRunArn"]
    assert aws_client("stepfunctions").describe_map_run(mapRunArn=run_arn)["status"] == "FAILED"


@pytest.mark.parametrize(
    # an integer percentage, as AWS takes it (stock LocalStack's parser refuses one)
    "tolerance",
    [{"ToleratedFailureCount": 1}, {"ToleratedFailurePercentage": 34}],
)
def test_distributed_map_within_its_tolerance_succeeds_without_the_failed_item(
    run_machine, aws_client, square, tolerance
):
    execution, events = run_machine(_distributed(square, **tolerance), [1, -2, 3])

    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"]) == [{"square": 1}, {"square": 9}]
    run_arn = next(e for e in events if e["type"] == "MapRunStarted")[
        "mapRunStartedEventDetails"]["mapRunArn"]  # fmt: skip
    sfn = aws_client("stepfunctions")
    assert sfn.describe_map_run(mapRunArn=run_arn)["status"] == "SUCCEEDED"

    children = sfn.list_executions(mapRunArn=run_arn)["executions"]
    assert sorted(c["status"] for c in children) == ["FAILED", "SUCCEEDED", "SUCCEEDED"]
    machine = children[0]["stateMachineArn"]
    assert machine.endswith("/squares")  # <state machine ARN>/<Label>
    for child in children:
        assert child["mapRunArn"] == run_arn and child["itemCount"] == 1
        assert child["executionArn"] == (
            f"{machine.replace(':stateMachine:', ':execution:')}:{child['name']}"
        )
        assert child["stopDate"] >= child["startDate"]
    only_failed = sfn.list_executions(mapRunArn=run_arn, statusFilter="FAILED")["executions"]
    assert [c["status"] for c in only_failed] == ["FAILED"]


# ------------------------------ CreateStateMachine's checks ------------------------------
BAD_DEFINITIONS = [
    (
        {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "classify", "End": True}}},
        "SCHEMA_VALIDATION_FAILED: Value is not a valid resource ARN at /States/A/Resource",
    ),
    (
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}},
        "MISSING_TRANSITION_TARGET: Missing 'Next' target: Nowhere at /States/A/Next",
    ),
]


NOT_RECOGNIZED = (
    "SCHEMA_VALIDATION_FAILED: The resource provided {} is not recognized. The value is not a "
    "valid resource ARN, or the resource is not available in this region. at /States/T/Resource"
)
NOT_AN_ARN = "SCHEMA_VALIDATION_FAILED: Value is not a valid resource ARN at /States/T/Resource"


def _task(resource: object) -> dict:
    return {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": resource, "End": True}}}


def _create_refusal(sfn, definition: dict) -> str:
    """CreateStateMachine's InvalidDefinition message for ``definition`` (it must refuse it)."""
    with pytest.raises(sfn.exceptions.InvalidDefinition) as raised:
        sfn.create_state_machine(
            name=f"bad-{uuid.uuid4().hex[:8]}",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::000000000000:role/sfn",
        )
    assert raised.value.response["Error"]["Code"] == "InvalidDefinition"
    return raised.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:sns:us-east-1:123456789012:scones-loading-bay",  # a topic is not a Task resource
        "arn:aws:states::sns:publish",  # one colon short
        "arn:aws:states:::sns:publsh",
        "arn:aws:states:::sns:publish.sync",  # SNS has no .sync pattern
        "arn:aws:states:::dynamodb:getItem.waitForTaskToken",
        "arn:aws:lambda:us-east-1:123456789012:function",  # no function name
        "arn:aws:states:::aws-sdk:s3:getObject.sync",
    ],
)
def test_unrecognized_resources_are_refused_in_aws_words(aws_client, resource):
    message = _create_refusal(aws_client("stepfunctions"), _task(resource))
    assert message == f"Invalid State Machine Definition: '{NOT_RECOGNIZED.format(resource)}'"


@pytest.mark.parametrize("resource", ["sns:publish", "${NotifyArn}", 42])
def test_a_resource_that_is_not_an_arn_is_refused(aws_client, resource):
    message = _create_refusal(aws_client("stepfunctions"), _task(resource))
    assert message == f"Invalid State Machine Definition: '{NOT_AN_ARN}'"


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:states:::sns:publish",
        "arn:aws:states:::sns:publish.waitForTaskToken",
        "arn:aws:states:::lambda:invoke",
        "arn:aws:states:::states:startExecution.sync:2",
        "arn:aws:states:::aws-sdk:s3:getObject",
        "arn:aws:states:::glue:startJobRun.sync",  # not modelled by the patch: LocalStack decides
        "arn:aws:lambda:us-east-1:123456789012:function:classify:$LATEST",
        "arn:aws:states:us-east-1:123456789012:activity:review",
    ],
)
def test_resources_aws_accepts_pass_validation(aws_client, resource):
    sfn = aws_client("stepfunctions")
    answer = sfn.validate_state_machine_definition(definition=json.dumps(_task(resource)))
    assert (answer["result"], answer["diagnostics"]) == ("OK", [])


def test_missing_transition_target_is_refused_in_branches_too(aws_client):
    definition = {"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Gone"}}}]}}}  # fmt: skip
    assert _create_refusal(aws_client("stepfunctions"), definition) == (
        "Invalid State Machine Definition: 'MISSING_TRANSITION_TARGET: Missing 'Next' target: "
        "Gone at /States/P/Branches[0]/States/A/Next'"
    )


def test_validate_state_machine_definition_fails_with_the_create_message(aws_client):
    """ValidateStateMachineDefinition runs the same checks (what `scones import` asks)."""
    resource = "arn:aws:states:::sns:publish.sync"
    answer = aws_client("stepfunctions").validate_state_machine_definition(
        definition=json.dumps(_task(resource))
    )
    assert answer["result"] == "FAIL"
    assert [d["message"] for d in answer["diagnostics"]] == [
        f"Invalid State Machine Definition: '{NOT_RECOGNIZED.format(resource)}'"
    ]


@pytest.mark.parametrize(("definition", "diagnostic"), BAD_DEFINITIONS)
def test_plain_boto3_create_state_machine_gets_aws_invalid_definition(
    aws_client, definition, diagnostic
):
    sfn = aws_client("stepfunctions")

    with pytest.raises(sfn.exceptions.InvalidDefinition) as raised:
        sfn.create_state_machine(
            name=f"bad-{uuid.uuid4().hex[:8]}",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::000000000000:role/sfn",
        )

    error = raised.value.response["Error"]
    assert error["Code"] == "InvalidDefinition"
    assert error["Message"] == f"Invalid State Machine Definition: '{diagnostic}'"


def test_update_state_machine_to_a_bad_definition_is_refused_and_changes_nothing(aws_client):
    sfn = aws_client("stepfunctions")
    good = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    arn = sfn.create_state_machine(
        name=f"good-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(good),
        roleArn="arn:aws:iam::000000000000:role/sfn",
    )["stateMachineArn"]

    with pytest.raises(sfn.exceptions.InvalidDefinition):
        sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(BAD_DEFINITIONS[1][0]))

    assert json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"]) == good
