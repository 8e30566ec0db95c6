"""The scones Lambda executor: real Python functions run by awslambdaric behave as on AWS."""

import base64
import json
import re
import shutil
import threading
import time
import uuid

import pytest
from scones_emulator.process import private_tmp_prefix

from scones import config

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::000000000000:role/scones-test-lambda"

# One handler for the behaviours that need no state of their own; `kind` picks one.
KINDS = """
import base64
import os
import sys
import time

COUNT = 0
print("init: module imported")


def handler(event, context):
    global COUNT
    COUNT += 1
    print("handling", event["kind"], COUNT)
    kind = event["kind"]
    if kind == "bytes":
        return {"b": base64.b64encode(b"x")}
    if kind == "boom":
        raise ValueError("boom")
    if kind == "string":
        raise ("text")
    if kind == "sleep":
        time.sleep(event["seconds"])
    if kind == "exit":
        sys.exit(3)
    return {
        "count": COUNT,
        "pid": os.getpid(),
        "version": "%d.%d" % sys.version_info[:2],
        "cwd": os.getcwd(),
        "env": {k: os.environ.get(k) for k in event.get("env", [])},
        "sys_path": sys.path,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
"""

BUNDLED = {
    "app.py": (
        "import tinydep\n\n\ndef handler(event, context):\n"
        "    return tinydep.shout(event['word'])\n"
    ),
    "tinydep/__init__.py": "from tinydep.core import shout\n",
    "tinydep/core.py": "def shout(word):\n    return word.upper() + '!'\n",
}

S3_WRITER = """
import boto3


def handler(event, context):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=event["bucket"], Key=event["key"], Body=b"from lambda")
    return {"keys": [o["Key"] for o in s3.list_objects_v2(Bucket=event["bucket"])["Contents"]]}
"""


@pytest.fixture(scope="module")
def make_function(create_function):
    """Create a zip function and wait until it is Active; returns its name."""

    def make(files: dict[str, str], handler: str = "app.handler", **config) -> str:
        config.setdefault("Runtime", "python3.12")
        config.setdefault("Timeout", 10)
        return create_function(files, handler, Role=ROLE, **config)["FunctionName"]

    return make


@pytest.fixture(scope="module")
def kinds(make_function) -> str:
    return make_function({"app.py": KINDS}, Environment={"Variables": {"GREETING": "hi"}})


def _invoke(lam, name: str, event: dict, tail: bool = False) -> tuple[dict, dict]:
    extra = {"LogType": "Tail"} if tail else {}
    response = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **extra)
    return response, json.loads(response["Payload"].read())


def test_result_is_marshalled_by_the_runtime_client(aws_client, kinds):
    response, body = _invoke(aws_client("lambda"), kinds, {"kind": "bytes"})
    assert "FunctionError" not in response
    assert body == {"b": "eA=="}  # awslambdaric's encoder turns bytes into base64 text


def test_exception_is_an_unhandled_function_error(aws_client, kinds):
    response, body = _invoke(aws_client("lambda"), kinds, {"kind": "boom"})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "boom"
    assert any('raise ValueError("boom")' in frame for frame in body["stackTrace"])


def test_raising_a_string_is_a_type_error(aws_client, kinds):
    response, body = _invoke(aws_client("lambda"), kinds, {"kind": "string"})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "TypeError"


def test_warm_invoke_reuses_the_process_and_its_module_state(aws_client, kinds):
    lam = aws_client("lambda")
    _, first = _invoke(lam, kinds, {"kind": "state"})
    _, second = _invoke(lam, kinds, {"kind": "state"})
    assert second["pid"] == first["pid"]
    assert second["count"] == first["count"] + 1


def test_concurrent_invokes_run_in_separate_processes(aws_client, make_function):
    name = make_function({"app.py": KINDS})
    lam = aws_client("lambda")
    bodies: list[dict] = []

    def call() -> None:
        # a sleep keeps the first environment busy while the second invoke arrives
        bodies.append(_invoke(lam, name, {"kind": "sleep", "seconds": 1.5})[1])

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(bodies) == 2
    assert bodies[0]["pid"] != bodies[1]["pid"]
    assert bodies[0]["count"] == bodies[1]["count"] == 1


def test_timeout_answers_sandbox_timedout_and_replaces_the_process(aws_client, make_function):
    name = make_function({"app.py": KINDS}, Timeout=1)
    lam = aws_client("lambda")
    _, before = _invoke(lam, name, {"kind": "state"})
    began = time.monotonic()
    response, body = _invoke(lam, name, {"kind": "sleep", "seconds": 5}, tail=True)
    assert time.monotonic() - began < 4.5  # killed at the 1 s timeout, not after the sleep
    request_id = response["ResponseMetadata"]["RequestId"]
    assert response["FunctionError"] == "Unhandled"
    assert body == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after 1.00 seconds",
    }
    logs = base64.b64decode(response["LogResult"]).decode()
    assert re.search(r"REPORT RequestId: \S+\tDuration: .*\tStatus: timeout", logs)
    _, after = _invoke(lam, name, {"kind": "state"})
    assert after["pid"] != before["pid"]  # the timed-out sandbox was not reused
    assert after["count"] == 1


def test_runtime_exit_is_a_runtime_exit_error(aws_client, make_function):
    name = make_function({"app.py": KINDS})
    lam = aws_client("lambda")
    response, body = _invoke(lam, name, {"kind": "exit"})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith("Runtime exited with error: exit status 3")
    _, after = _invoke(lam, name, {"kind": "state"})
    assert after["count"] == 1  # a fresh process serves the next event


def test_import_error_is_reported_as_the_init_error(aws_client, make_function):
    name = make_function({"app.py": KINDS}, handler="missing_module.handler")
    response, body = _invoke(aws_client("lambda"), name, {"kind": "state"})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert "missing_module" in body["errorMessage"]


def test_tail_logs_have_start_end_report_and_prints(aws_client, make_function):
    name = make_function({"app.py": KINDS})
    response, body = _invoke(aws_client("lambda"), name, {"kind": "state"}, tail=True)
    request_id = body["request_id"]
    assert request_id == response["ResponseMetadata"]["RequestId"]
    lines = base64.b64decode(response["LogResult"]).decode().splitlines()
    assert "init: module imported" in lines  # cold start: init output comes first
    start = lines.index(f"START RequestId: {request_id} Version: $LATEST")
    end = lines.index(f"END RequestId: {request_id}")
    assert start < lines.index("handling state 1") < end
    report = lines[end + 1]
    assert re.fullmatch(
        rf"REPORT RequestId: {request_id}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms"
        r"\tMemory Size: 128 MB\tMax Memory Used: \d+ MB\tInit Duration: [\d.]+ ms",
        report,
    )


CHATTY = """
def handler(event, context):
    for i in range(event["lines"]):
        print(f"{event['tag']} line {i:06d} " + "x" * 50, flush=event["flush"])
    return event["tag"]
"""


def test_output_past_the_pipe_buffer_reaches_the_logs_whole_and_in_order(aws_client, make_function):
    """5,000 lines (~330 KB) block the handler unless the emulator drains its pipe while it runs;
    each invoke's logs end with its own last line, none of the next invoke's."""
    name = make_function({"app.py": CHATTY})
    lam = aws_client("lambda")
    for tag, flush in (("first", True), ("second", False)):
        event = {"tag": tag, "lines": 5000, "flush": flush}
        response, body = _invoke(lam, name, event, tail=True)
        assert body == tag, body
        lines = base64.b64decode(response["LogResult"]).decode().splitlines()
        end = lines.index(f"END RequestId: {response['ResponseMetadata']['RequestId']}")
        printed = [line.split(" ")[:3] for line in lines[1:end] if " line " in line]
        assert printed[-1] == [tag, "line", "004999"]
        numbers = [int(number) for _, _, number in printed]
        assert numbers == list(range(numbers[0], 5000))  # the tail's lines, none lost between
        assert {t for t, _, _ in printed} == {tag}


def test_cloudwatch_logs_receive_the_invocation_logs(aws_client, make_function):
    name = make_function({"app.py": KINDS})
    _, body = _invoke(aws_client("lambda"), name, {"kind": "state"})
    logs = aws_client("logs")
    group = f"/aws/lambda/{name}"
    messages: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # LocalStack ships logs from a background thread
        try:
            events = logs.filter_log_events(logGroupName=group)["events"]
        except logs.exceptions.ResourceNotFoundException:
            events = []
        messages = [event["message"] for event in events]
        if any(m.startswith("REPORT") for m in messages):
            break
        time.sleep(0.5)
    assert f"START RequestId: {body['request_id']} Version: $LATEST\n" in messages
    assert "handling state 1\n" in messages


def test_zip_with_a_bundled_package_imports_it(aws_client, make_function):
    name = make_function(BUNDLED)
    response, body = _invoke(aws_client("lambda"), name, {"word": "scones"})
    assert "FunctionError" not in response
    assert body == "SCONES!"


def test_boto3_in_the_handler_reaches_the_emulator(aws_client, make_function):
    s3 = aws_client("s3")
    bucket = f"rt-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    name = make_function({"app.py": S3_WRITER})
    response, body = _invoke(aws_client("lambda"), name, {"bucket": bucket, "key": "hello.txt"})
    assert "FunctionError" not in response, body
    assert body == {"keys": ["hello.txt"]}
    assert s3.get_object(Bucket=bucket, Key="hello.txt")["Body"].read() == b"from lambda"


def test_environment_is_the_lambda_one_without_the_emulator_venv(aws_client, kinds):
    wanted = [
        "LAMBDA_TASK_ROOT",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_ENDPOINT_URL",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_EXECUTION_ENV",
        "GREETING",
        "VIRTUAL_ENV",
    ]
    _, body = _invoke(aws_client("lambda"), kinds, {"kind": "state", "env": wanted})
    env = body["env"]
    assert env["LAMBDA_TASK_ROOT"] == body["cwd"]
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == kinds
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["GREETING"] == "hi"  # the function's own variables
    assert env["VIRTUAL_ENV"] is None
    assert not any("localstack-venv/lib" in entry for entry in body["sys_path"])
    assert 0 < body["remaining_ms"] <= 10_000  # the deadline header reached the context


@pytest.mark.parametrize("version", ["3.11", "3.12", "3.13"])
def test_declared_runtime_picks_the_matching_python(aws_client, make_function, version):
    if not shutil.which(f"python{version}"):
        pytest.skip(f"no python{version} on this machine")
    name = make_function({"app.py": KINDS}, Runtime=f"python{version}")
    _, body = _invoke(aws_client("lambda"), name, {"kind": "state"})
    assert body["version"] == version


# The course's serializer downloads to /tmp/image.png: each environment needs its own /tmp.
TMP_OWNER = """
import os
import time


def handler(event, context):
    found = os.path.exists("/tmp/owner")  # left by an earlier invocation of this environment
    with open("/tmp/owner", "w") as f:
        f.write(context.aws_request_id)
    time.sleep(event["hold_s"])  # every concurrent environment writes before anyone reads
    with open("/tmp/owner") as f:
        return {"mine": context.aws_request_id, "read": f.read(), "found_earlier": found}
"""


@pytest.mark.skipif(
    private_tmp_prefix() is None or config.STATE_DIR.resolve().is_relative_to("/tmp"),
    reason="no mount namespaces here, or the stack's state dir is under /tmp (a private /tmp "
    "would hide it): Lambda environments then share the host's /tmp",
)
def test_each_environment_has_its_own_tmp(aws_client, make_function):
    lam, name = aws_client("lambda"), make_function({"app.py": TMP_OWNER})
    bodies: list[dict] = []

    def call() -> None:
        bodies.append(_invoke(lam, name, {"hold_s": 1.0})[1])

    threads = [threading.Thread(target=call) for _ in range(4)]  # 4 environments at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(bodies) == 4
    # with one shared /tmp, all four would read the last writer's request id
    assert all(body["read"] == body["mine"] for body in bodies), bodies
    assert not any(body["found_earlier"] for body in bodies)
    # a warm environment keeps its /tmp between invocations, as on AWS
    assert _invoke(lam, name, {"hold_s": 0})[1]["found_earlier"]
