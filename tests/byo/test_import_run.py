"""`scones import` + `scones execute` against the real emulator and model server.

The course project in course_project/ (console-exported definition with account-ID ARNs and Retry
blocks, three console-written Lambda files, test events) is imported unchanged; each variant
reproduces a classic mistake and must end as it would on AWS. AWS's strings come from AWS's own
runtime code (awslambdaric's marshaller, CPython's messages) and Step Functions' documented formats.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scones import aws, byo, config
from scones import stack as stack_module

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parent / "course_project"
ACCOUNT, REGION = "123456789012", "us-east-1"  # what the project's ARNs name
DEFINITION = PROJECT / "statemachine.json"
LAMBDAS = PROJECT / "lambdas"
VARIANTS = PROJECT / "variants"
EVENT = json.loads((PROJECT / "events" / "test_event.json").read_text())
ENDPOINT = "image-classification-2021-11-20-23-59-22-151"  # hard-coded in classifyImage.py
STATES = ["Serialize Image Data", "Classify Image", "Filter Low Confidence Inferences"]
# AWS's history for one Task state per integration style.
INVOKE_OK = ["TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited"]
DIRECT_OK = ["TaskStateEntered", "LambdaFunctionScheduled", "LambdaFunctionStarted",
             "LambdaFunctionSucceeded", "TaskStateExited"]  # fmt: skip
INVOKE_FAILED = ["TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskFailed"]


# ------------------------------ helpers ------------------------------


_DATASET: list[Path] = []  # set by the `stack` fixture: where staged images come from


def _import(name: str, definition: Path = DEFINITION, sources: list[Path] | None = None, **kw):
    kw.setdefault("dataset", _DATASET[0])
    return byo.import_project(definition, sources or [LAMBDAS], name=name, **kw)


def _event(image: str) -> dict:
    return {**EVENT, "s3_key": f"test/{image}"}


def _types(execution: byo.Execution) -> list[str]:
    return [e["type"] for e in execution.events]


def _cause(execution: byo.Execution) -> dict:
    return json.loads(execution.described["cause"])


def _entered_id(execution: byo.Execution, state: str) -> int:
    return next(
        e["id"] for e in execution.events
        if e["type"].endswith("StateEntered") and e["stateEnteredEventDetails"]["name"] == state
    )  # fmt: skip


def _detail(execution: byo.Execution, kind: str, state: str | None = None) -> dict:
    for event in execution.events:
        details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
        if event["type"] == kind and (state is None or details.get("name") == state):
            return details
    raise AssertionError(f"no {kind} {state or ''} in {_types(execution)}")


@pytest.fixture(scope="module")
def stack(emulator, byo_model, dataset_dir):
    """Emulator + model server + where the dataset comes from."""
    _DATASET[:] = [dataset_dir]
    return dataset_dir


@pytest.fixture(scope="module")
def course(stack):
    """The course project imported as exported: definition and Lambda folder, events staged."""
    before = DEFINITION.read_bytes()
    result = _import("scones-course", events=[PROJECT / "events" / "test_event.json"],
                     dataset=stack)  # fmt: skip
    assert DEFINITION.read_bytes() == before  # the user's file is left intact
    return result


# ------------------------------ the course project, unchanged ------------------------------


def test_course_project_runs_unchanged_and_labels_the_image(
    course, confident, model_view, aws_client
):
    execution = byo.execute("scones-course", _event(confident["name"]))

    assert execution.status == "SUCCEEDED", execution.described.get("cause")
    body = json.loads(json.loads(execution.described["output"])["body"])  # the filter's json.dumps
    label = model_view.classes[
        max(range(len(body["inferences"])), key=body["inferences"].__getitem__)
    ]
    assert label == confident["truth"] == confident["predicted"]
    assert body["inferences"] == pytest.approx(confident["probabilities"], abs=1e-6)
    assert _types(execution) == ["ExecutionStarted", *INVOKE_OK * 3, "ExecutionSucceeded"]
    # The serializer returned base64 *bytes*: awslambdaric's simplejson writes them as a string.
    serialized = json.loads(_detail(execution, "TaskStateExited", STATES[0])["output"])
    png = _object(EVENT["s3_bucket"], f"test/{confident['name']}")
    assert png.startswith(b"\x89PNG")
    assert serialized["body"]["image_data"] == base64.b64encode(png).decode()
    # The bucket belongs to the user's account, as on AWS: the default account does not list it.
    default_buckets = aws_client("s3").list_buckets()["Buckets"]
    assert EVENT["s3_bucket"] not in [b["Name"] for b in default_buckets]


def _start_and_wait(name: str, event: dict, seconds: float = 120) -> byo.Execution:
    """One execution started with StartExecution itself, as a user on the console would."""
    sfn = aws.AccountClients(ACCOUNT, REGION)("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}",
        input=json.dumps(event),
    )["executionArn"]
    deadline = time.monotonic() + seconds
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{arn} still running after {seconds} s"
        time.sleep(0.2)
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return byo.Execution(described, events, 0.0)


def _object(bucket: str, key: str) -> bytes:
    """An object as the user's account reads it."""
    s3 = aws.AccountClients(ACCOUNT, REGION)("s3")
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_import_deploys_under_the_definitions_account_and_region(course):
    clients = aws.AccountClients(ACCOUNT, REGION)
    described = clients("stepfunctions").describe_state_machine(
        stateMachineArn=course.state_machine_arn
    )
    assert described["definition"] == DEFINITION.read_text()  # sent byte for byte
    assert (
        course.state_machine_arn == f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:scones-course"
    )
    for name in ("serializeImageData", "classifyImage", "filterInferences"):
        arn = clients("lambda").get_function(FunctionName=name)["Configuration"]["FunctionArn"]
        assert arn == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        assert f"{arn}:$LATEST" in DEFINITION.read_text()
    other = aws.AccountClients(config.ACCOUNT_ID, REGION)("lambda")
    with pytest.raises(other.exceptions.ResourceNotFoundException):
        other.get_function(FunctionName="classifyImage")


def test_endpoint_name_in_the_code_reaches_the_model_server(course, model_view):
    assert [(u["name"], u["how"]) for u in course.endpoints] == [(ENDPOINT, "assignment")]
    assert ENDPOINT in byo.served_endpoints()
    clients = aws.AccountClients(ACCOUNT, REGION)
    env = clients("lambda").get_function_configuration(FunctionName="classifyImage")
    assert env["Environment"]["Variables"]["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == model_view.url


ENDPOINT_EVENT = VARIANTS / "endpoint_in_event" / "event.json"


def test_endpoint_name_in_the_event_is_served_across_restarts(stack, confident):
    """A project that passes its endpoint in the execution input: import reads the --event files,
    the model server answers that name, and still does after it restarts."""
    wanted = json.loads(ENDPOINT_EVENT.read_text())["endpoint"]
    result = _import("scones-endpoint-event", sources=[VARIANTS / "endpoint_in_event", LAMBDAS],
                     events=[ENDPOINT_EVENT], endpoints=["by-hand-endpoint"])  # fmt: skip
    assert (wanted, "event", str(ENDPOINT_EVENT), 4) in [
        (u["name"], u["how"], u["file"], u["line"]) for u in result.endpoints
    ]
    assert ("by-hand-endpoint", "--endpoint") in [(u["name"], u["how"]) for u in result.endpoints]
    model = next(c for c in stack_module.components() if c.name == "model")
    stack_module.stop(model)
    stack_module.start(model, 60)
    assert {wanted, "by-hand-endpoint", ENDPOINT} <= set(byo.served_endpoints())

    execution = byo.execute(
        "scones-endpoint-event", {**json.loads(ENDPOINT_EVENT.read_text()),
                                  "s3_key": f"test/{confident['name']}"}
    )  # fmt: skip
    assert execution.status == "SUCCEEDED", execution.described.get("cause")


def test_unknown_endpoint_error_names_the_projects_account(stack, confident):
    """AWS's ValidationError names the caller's account: the one the project's ARNs name."""
    _import("scones-endpoint-event", sources=[VARIANTS / "endpoint_in_event", LAMBDAS])
    event = {**json.loads(ENDPOINT_EVENT.read_text()), "s3_key": f"test/{confident['name']}",
             "endpoint": "never-imported-endpoint"}  # fmt: skip
    # started straight through Step Functions: `scones execute` would serve the name first
    execution = _start_and_wait("scones-endpoint-event", event)
    assert execution.status == "FAILED"
    assert execution.described["error"] == "ValidationError"
    assert json.loads(execution.described["cause"])["errorMessage"] == (
        "An error occurred (ValidationError) when calling the InvokeEndpoint operation: "
        f"Endpoint never-imported-endpoint of account {ACCOUNT} not found."
    )


def test_event_bucket_with_a_prefix_gets_the_dataset_under_it(stack, dataset_dir):
    prefixed = json.loads((PROJECT / "events" / "prefixed_event.json").read_text())
    result = _import("scones-course", events=[PROJECT / "events" / "prefixed_event.json"],
                     dataset=stack)  # fmt: skip
    assert {"bucket": prefixed["s3_bucket"], "prefix": "data/"}.items() <= result.staged[0].items()
    name = Path(prefixed["s3_key"]).name
    staged = _object(prefixed["s3_bucket"], prefixed["s3_key"])
    assert _pixels(staged) == _pixels((dataset_dir / "test" / name).read_bytes())


def _pixels(png: bytes) -> bytes:
    """RGB pixels: staging writes SageMaker's RGB PNGs, the shared copy is RGBA."""
    from PIL import Image

    return Image.open(io.BytesIO(png)).convert("RGB").tobytes()


# ------------------------------ the classic mistakes ------------------------------


def test_filter_raising_a_string_fails_with_type_error(course, doubtful):
    execution = byo.execute("scones-course", _event(doubtful["name"]))

    assert execution.status == "FAILED"
    assert execution.described["error"] == "TypeError"
    cause = _cause(execution)
    assert cause["errorType"] == "TypeError"
    assert cause["errorMessage"] == "exceptions must derive from BaseException"
    assert 'raise("THRESHOLD_CONFIDENCE_NOT_MET")' in cause["stackTrace"][-1]
    # AWS unpacks the function in /var/task: the trace names that, not the emulator's host path
    assert cause["stackTrace"][-1].startswith('  File "/var/task/filterInferences.py", line ')
    # The Lambda.* retriers do not match TypeError: one attempt, then the execution fails.
    assert _types(execution) == [
        "ExecutionStarted", *INVOKE_OK * 2, *INVOKE_FAILED, "ExecutionFailed"
    ]  # fmt: skip
    assert _detail(execution, "TaskFailed")["error"] == "TypeError"


def test_lambda_invoke_error_cause_is_the_payload_as_compact_json(course, doubtful):
    """lambda:invoke parses the function's error payload and writes it back compactly: AWS's own
    history (LocalStack's AWS-recorded test_task_service_lambda snapshot) reads
    {"errorMessage":"...","errorType":...} where the Python runtime wrote ", " and ": "."""
    execution = byo.execute("scones-course", _event(doubtful["name"]))
    compact = json.dumps(_cause(execution), separators=(",", ":"))
    assert execution.described["cause"] == compact
    assert _detail(execution, "TaskFailed")["cause"] == compact


def test_whole_lambda_invoke_result_is_passed_on_as_aws_returns_it(stack, confident):
    """No OutputPath on the last step: the execution's output is lambda:invoke's whole result,
    SdkHttpMetadata and SdkResponseMetadata included (AWS's shape, key order and all)."""
    _import("scones-whole-result", VARIANTS / "whole_invoke_result.json")
    execution = byo.execute("scones-whole-result", _event(confident["name"]))

    assert execution.status == "SUCCEEDED", execution.described.get("cause")
    output = json.loads(execution.described["output"])
    assert list(output) == ["ExecutedVersion", "Payload", "SdkHttpMetadata",
                            "SdkResponseMetadata", "StatusCode"]  # fmt: skip
    assert output["Payload"]["statusCode"] == 200
    headers = output["SdkHttpMetadata"]["HttpHeaders"]
    assert headers["x-amzn-RequestId"] == output["SdkResponseMetadata"]["RequestId"]
    assert headers["X-Amz-Executed-Version"] == output["ExecutedVersion"] == "$LATEST"
    assert output["SdkHttpMetadata"]["HttpStatusCode"] == output["StatusCode"] == 200


def test_serializer_returning_raw_bytes_is_a_marshal_error(stack, confident):
    _import("scones-raw-bytes", sources=[VARIANTS / "serializer_raw_bytes", LAMBDAS])
    execution = byo.execute("scones-raw-bytes", _event(confident["name"]))

    assert execution.status == "FAILED"
    assert execution.described["error"] == "Runtime.MarshalError"
    cause = _cause(execution)
    # awslambdaric encodes with simplejson: bytes must decode as UTF-8; a PNG starts with 0x89.
    assert cause["errorMessage"] == (
        "Unable to marshal response: 'utf-8' codec can't decode byte 0x89 in position 0: "
        "invalid start byte"
    )
    assert cause["errorType"] == "Runtime.MarshalError"
    assert cause["stackTrace"] == []
    assert _types(execution) == ["ExecutionStarted", *INVOKE_FAILED, "ExecutionFailed"]


def test_classifier_json_string_body_is_parsed_by_the_lambda_invoke(stack, confident):
    """Step Functions passes a string Payload that is valid JSON as that JSON document (AWS's
    recorded behaviour for lambda:invoke), so the course's json.dumps body still works."""
    _import("scones-json-body", sources=[VARIANTS / "classifier_json_body" / "classifyImage.py",
                                         LAMBDAS])  # fmt: skip
    execution = byo.execute("scones-json-body", _event(confident["name"]))

    assert execution.status == "SUCCEEDED", execution.described.get("cause")
    classified = json.loads(_detail(execution, "TaskStateExited", STATES[1])["output"])
    assert isinstance(classified["body"], str)  # a JSON string leaves the classifier
    scheduled = [e for e in execution.events if e["type"] == "TaskScheduled"][-1]
    payload = json.loads(scheduled["taskScheduledEventDetails"]["parameters"])["Payload"]
    assert payload == classified["body"]


# CPython's own message for str["key"], which changed in 3.11: the runtime decides the text.
STRING_INDEX = {"python3.9": "string indices must be integers",
                "python3.12": "string indices must be integers, not 'str'"}  # fmt: skip


@pytest.mark.parametrize("runtime", sorted(STRING_INDEX))
def test_filter_indexing_into_the_json_string_body_fails_per_runtime(stack, confident, runtime):
    result = _import(
        "scones-json-body-filter",
        VARIANTS / "filter_reads_body.json",
        sources=[VARIANTS / "classifier_json_body", LAMBDAS],
        runtimes={"filterInferences": runtime},
    )
    assert result.functions["filterInferences"]["runtime"] == runtime
    execution = byo.execute("scones-json-body-filter", _event(confident["name"]))

    assert execution.status == "FAILED"
    assert execution.described["error"] == "TypeError"
    cause = _cause(execution)
    assert cause["errorMessage"] == STRING_INDEX[runtime]
    assert "inferences = event['body']['inferences']" in cause["stackTrace"][-1]
    assert _types(execution) == [
        "ExecutionStarted", *INVOKE_OK * 2, *INVOKE_FAILED, "ExecutionFailed"
    ]  # fmt: skip


def test_jsonpath_into_a_string_body_is_a_states_runtime_error(stack, confident):
    _import("scones-jsonpath", VARIANTS / "jsonpath_into_string.json",
            sources=[VARIANTS / "classifier_json_body", LAMBDAS])  # fmt: skip
    execution = byo.execute("scones-jsonpath", _event(confident["name"]))

    assert execution.status == "FAILED"
    assert execution.described["error"] == "States.Runtime"
    entered = _entered_id(execution, STATES[2])
    state_input = _detail(execution, "TaskStateEntered", STATES[2])["input"]
    cause = execution.described["cause"]
    assert cause.startswith(
        f"An error occurred while executing the state '{STATES[2]}' (entered at the event id "
        f"#{entered}). The JSONPath '$.body.inferences' "
    )
    assert cause.endswith(f"could not be found in the input '{state_input}'")


def test_jsonpath_failure_matches_aws_exactly(stack, confident):
    _import("scones-jsonpath", VARIANTS / "jsonpath_into_string.json",
            sources=[VARIANTS / "classifier_json_body", LAMBDAS])  # fmt: skip
    execution = byo.execute("scones-jsonpath", _event(confident["name"]))
    entered = _entered_id(execution, STATES[2])
    state_input = _detail(execution, "TaskStateEntered", STATES[2])["input"]
    assert execution.described["cause"] == (
        f"An error occurred while executing the state '{STATES[2]}' (entered at the event id "
        f"#{entered}). The JSONPath '$.body.inferences' specified for the field 'inferences.$' "
        f"could not be found in the input '{state_input}'"
    )
    assert _types(execution)[-2:] == ["TaskStateEntered", "ExecutionFailed"]


def test_jsonata_definition_runs_like_the_jsonpath_one(stack, confident, model_view):
    _import("scones-jsonata", VARIANTS / "jsonata.json")
    execution = byo.execute("scones-jsonata", _event(confident["name"]))

    assert execution.status == "SUCCEEDED", execution.described.get("cause")
    body = json.loads(json.loads(execution.described["output"])["body"])
    best = max(range(len(body["inferences"])), key=body["inferences"].__getitem__)
    assert model_view.classes[best] == confident["truth"]
    assert _types(execution) == ["ExecutionStarted", *INVOKE_OK * 3, "ExecutionSucceeded"]


def test_parallel_output_is_a_list_the_next_step_cannot_index(stack, confident):
    _import("scones-parallel", VARIANTS / "parallel.json")
    execution = byo.execute("scones-parallel", _event(confident["name"]))

    assert execution.status == "FAILED"
    assert execution.described["error"] == "States.Runtime"
    output = json.loads(_detail(execution, "ParallelStateExited")["output"])
    assert isinstance(output, list) and len(output) == 2  # one entry per branch, in branch order
    assert output[0]["body"]["inferences"]  # the classifier's output
    assert output[1] == json.loads(_detail(execution, "TaskStateExited", STATES[0])["output"])
    types = _types(execution)
    assert types[: 1 + len(INVOKE_OK) + 2] == [
        "ExecutionStarted", *INVOKE_OK, "ParallelStateEntered", "ParallelStateStarted"
    ]  # fmt: skip
    assert "ParallelStateSucceeded" in types and "ParallelStateExited" in types
    entered = _entered_id(execution, STATES[2])
    assert execution.described["cause"].startswith(
        f"An error occurred while executing the state '{STATES[2]}' (entered at the event id "
        f"#{entered}). The JSONPath '$.body' "
    )


def test_sns_task_with_a_topic_arn_as_resource_is_rejected_at_import(stack):
    clean = "109876543210"  # an account nothing else uses: shows nothing was deployed
    definition = VARIANTS / "sns_malformed.json"
    with pytest.raises(byo.DefinitionRejected) as rejected:
        _import("scones-sns", definition, account=clean)

    topic = "arn:aws:sns:us-east-1:123456789012:scones-loading-bay"
    assert str(rejected.value) == (
        "Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: The resource provided "
        f"{topic} is not recognized. The value is not a valid resource ARN, or the resource is not "
        "available in this region. at /States/Notify Loading Bay/Resource'"
    )
    assert rejected.value.code == "InvalidDefinition"
    clients = aws.AccountClients(clean, REGION)
    assert clients("stepfunctions").list_state_machines()["stateMachines"] == []
    assert clients("lambda").list_functions()["Functions"] == []


def test_emulator_refuses_what_aws_rejects_as_import_does(stack):
    """LocalStack alone runs a publish.sync Task that AWS refuses; the emulator plugin's fidelity
    patch refuses it with AWS's diagnostic, and `scones import` passes that answer on, named."""
    sfn = aws.AccountClients("109876543211", REGION)("stepfunctions")
    definition = {"StartAt": "N", "States": {"N": {
        "Type": "Task", "Resource": "arn:aws:states:::sns:publish.sync", "End": True}}}  # fmt: skip
    diagnostic = (
        "SCHEMA_VALIDATION_FAILED: The resource provided arn:aws:states:::sns:publish.sync is "
        "not recognized. The value is not a valid resource ARN, or the resource is not available "
        "in this region. at /States/N/Resource"
    )
    answer = sfn.validate_state_machine_definition(definition=json.dumps(definition))
    assert answer["result"] == "FAIL"
    assert diagnostic in json.dumps(answer["diagnostics"])
    with pytest.raises(byo.DefinitionRejected) as rejected:
        byo.check_definition(aws.AccountClients("109876543211", REGION), json.dumps(definition))
    assert str(rejected.value) == f"Invalid State Machine Definition: '{diagnostic}'"
    assert rejected.value.code == "InvalidDefinition"


def test_every_shipped_variant_but_the_sns_one_passes_the_emulators_checks(stack):
    clients = aws.AccountClients("109876543211", REGION)
    for path in sorted(VARIANTS.glob("*.json")):
        try:
            byo.check_definition(clients, path.read_text())
            rejected = False
        except byo.DefinitionRejected:
            rejected = True
        assert rejected == (path.name == "sns_malformed.json"), path.name


def test_every_arn_form_resolves_without_editing_the_definition(stack, confident):
    result = _import("scones-arn-forms", VARIANTS / "arn_forms.json",
                     events=[PROJECT / "events" / "test_event.json"], dataset=stack)  # fmt: skip
    assert (result.account, result.region) == ("210987654321", "eu-west-1")
    assert result.functions["classifyImage"]["qualifiers"] == ["prod"]
    assert result.functions["filterInferences"]["qualifiers"] == ["2"]
    lam = aws.AccountClients("210987654321", "eu-west-1")("lambda")
    assert lam.get_alias(FunctionName="classifyImage", Name="prod")["FunctionVersion"] == "1"
    versions = lam.list_versions_by_function(FunctionName="filterInferences")["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]

    execution = byo.execute("scones-arn-forms", _event(confident["name"]))
    assert execution.status == "SUCCEEDED", execution.described.get("cause")
    assert _types(execution) == ["ExecutionStarted", *DIRECT_OK, *INVOKE_OK * 2,
                                 "ExecutionSucceeded"]  # fmt: skip
    scheduled = _detail(execution, "LambdaFunctionScheduled")["resource"]
    assert scheduled == "arn:aws:lambda:eu-west-1:210987654321:function:serializeImageData"


def test_one_file_with_three_handlers(stack, confident, model_view):
    result = _import("scones-one-file", sources=[VARIANTS / "lambda.py"], runtime="python3.14")
    assert {n: f["handler"] for n, f in result.functions.items()} == {
        "serializeImageData": "lambda.serialize_image_data",
        "classifyImage": "lambda.classify_image",
        "filterInferences": "lambda.filter_inferences",
    }
    used = byo.runtime_interpreters({"python3.14"})["python3.14"]
    if used not in (None, "3.14"):  # this machine has no 3.14: the closest, with a warning
        assert any("runtime python3.14" in w and used in w for w in result.warnings)
    execution = byo.execute("scones-one-file", _event(confident["name"]))
    assert execution.status == "SUCCEEDED", execution.described.get("cause")


def test_retries_are_shown_like_the_console(stack, doubtful):
    _import("scones-retry", VARIANTS / "retry_all.json")
    execution = byo.execute("scones-retry", _event(doubtful["name"]))

    assert execution.status == "FAILED" and execution.described["error"] == "TypeError"
    assert _types(execution)[-11:] == [
        "TaskStateEntered", *["TaskScheduled", "TaskStarted", "TaskFailed"] * 3, "ExecutionFailed"
    ]  # fmt: skip
    text = "\n".join(byo.render(execution))
    assert "↻ retry 1 after" in text and "↻ retry 2 after" in text and "retry 3" not in text
    for state in STATES:
        assert f"▶ {state}" in text
    assert "Error     TypeError" in text
    assert "exceptions must derive from BaseException" in text


# ------------------------------ the CLI ------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SCONES_MODEL_DIR": str(config.MODEL_DIR)}
    return subprocess.run(
        [sys.executable, "-m", "scones", *args], capture_output=True, text=True, timeout=300,
        env=env, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip


def test_execute_cli_prints_the_console_view_and_the_raw_history(course, confident, tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps(_event(confident["name"])))

    shown = _cli("execute", "--state-machine", "scones-course", "--input", str(event))
    assert shown.returncode == 0, shown.stderr
    assert "Status    SUCCEEDED" in shown.stdout
    for state in STATES:
        assert f"▶ {state}" in shown.stdout and f"◀ {state}" in shown.stdout
    assert "…(" in shown.stdout and "chars)" in shown.stdout  # the image's base64, shortened

    raw = _cli("execute", "--state-machine", "scones-course", "--input", str(event), "--json")
    assert raw.returncode == 0, raw.stderr
    history = json.loads(raw.stdout)
    assert history["execution"]["status"] == "SUCCEEDED"
    assert [e["type"] for e in history["events"]] == [
        "ExecutionStarted", *INVOKE_OK * 3, "ExecutionSucceeded"
    ]  # fmt: skip


def test_import_cli_reports_functions_endpoints_and_data(stack, tmp_path):
    done = _cli("import", str(DEFINITION), str(LAMBDAS), "--name", "scones-course",
                "--event", str(PROJECT / "events" / "test_event.json"),
                "--dataset", str(stack), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["account"] == ACCOUNT and result["region"] == REGION
    assert sorted(result["functions"]) == [
        "classifyImage",
        "filterInferences",
        "serializeImageData",
    ]
    assert [e["name"] for e in result["endpoints"]] == [ENDPOINT]
    assert result["staged"][0]["bucket"] == EVENT["s3_bucket"]

    rejected = _cli("import", str(VARIANTS / "sns_malformed.json"), str(LAMBDAS))
    assert rejected.returncode == 1
    assert "Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED" in rejected.stderr
