"""The emulator's speedups change nothing a user can observe.

One state machine, many concurrent executions with different inputs and outcomes: each must get
its own output, its own failure and its own history, as without the caches. A rule listening for
Step Functions status changes still gets them; Lambda logs sent in batches are all there, in
order. Correctness only.
"""

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from scones_emulator import speedups

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::000000000000:role/scones-test-speedups"

# Echoes its input with a marker, or fails on request: a Lambda task per state (boto client cache).
ECHO = """
class Rejected(Exception):
    pass

def handler(event, context):
    if event.get("reject"):
        raise Rejected("rejected " + str(event["n"]))
    return {"n": event["n"], "double": 2 * event["n"], "tag": event["tag"]}
"""

# Retry keeps per-execution attempt counts in env.heap under each component's heap_key; a
# shared component tree must still count each execution's attempts separately.
MACHINE = {
    "StartAt": "First",
    "States": {
        "First": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {
                "FunctionName": "FUNCTION",
                "Payload": {"n.$": "$.n", "tag.$": "$.tag", "reject.$": "$.reject_first"},
            },
            "ResultSelector": {"double.$": "$.Payload.double", "tag.$": "$.Payload.tag"},
            "ResultPath": "$.first",
            "Retry": [{"ErrorEquals": ["Rejected"], "MaxAttempts": 1, "IntervalSeconds": 1}],
            "Next": "Big?",
        },
        "Big?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.first.double", "NumericGreaterThan": 10, "Next": "Big"}],
            "Default": "Small",
        },
        "Big": {
            "Type": "Pass",
            "Result": {"size": "big"},
            "ResultPath": "$.size",
            "Next": "Second",
        },
        "Small": {
            "Type": "Pass",
            "Result": {"size": "small"},
            "ResultPath": "$.size",
            "Next": "Second",
        },
        "Second": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {
                "FunctionName": "FUNCTION",
                "Payload": {"n.$": "$.first.double", "tag.$": "$.tag", "reject": False},
            },
            "ResultSelector": {"double.$": "$.Payload.double"},
            "ResultPath": "$.second",
            "End": True,
        },
    },
}


@pytest.fixture(scope="module")
def machine_arn(aws_client, create_function):
    sfn = aws_client("stepfunctions")
    suffix = uuid.uuid4().hex[:8]
    fn = create_function({"handler.py": ECHO}, "handler.handler", Runtime="python3.13", Timeout=30)
    definition = json.dumps(MACHINE).replace("FUNCTION", fn["FunctionArn"])
    arn = sfn.create_state_machine(name=f"speedups-{suffix}", definition=definition, roleArn=ROLE)[
        "stateMachineArn"
    ]
    yield arn
    sfn.delete_state_machine(stateMachineArn=arn)
    aws_client("lambda").delete_function(FunctionName=fn["FunctionName"])


def _wait(sfn, execution_arn: str, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while (execution := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{execution_arn} still running after {seconds} s"
        time.sleep(0.2)
    return execution


def _history(sfn, execution_arn: str) -> list[dict]:
    events: list[dict] = []
    kwargs = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def test_concurrent_executions_of_one_machine_stay_apart(aws_client, machine_arn):
    sfn = aws_client("stepfunctions")
    # n 0..11: small (double <= 10) and big paths; every 4th rejected twice -> fails after 1 retry.
    inputs = [
        {"n": n, "tag": f"t{n}-{uuid.uuid4().hex[:6]}", "reject_first": n % 4 == 3}
        for n in range(12)
    ]
    sfn.start_execution(stateMachineArn=machine_arn, input=json.dumps(inputs[0]))  # warm cache
    with ThreadPoolExecutor(max_workers=len(inputs)) as pool:
        arns = list(
            pool.map(
                lambda payload: sfn.start_execution(
                    stateMachineArn=machine_arn, input=json.dumps(payload)
                )["executionArn"],
                inputs,
            )
        )
    executions = [_wait(sfn, arn) for arn in arns]

    for payload, execution in zip(inputs, executions, strict=True):
        n, history = payload["n"], _history(sfn, execution["executionArn"])
        types = [event["type"] for event in history]
        assert json.loads(execution["input"]) == payload
        task_inputs = [
            json.loads(e["taskScheduledEventDetails"]["parameters"])["Payload"]
            for e in history
            if e["type"] == "TaskScheduled"
        ]
        assert all(p["tag"] == payload["tag"] for p in task_inputs), task_inputs
        if payload["reject_first"]:
            assert execution["status"] == "FAILED", (n, execution)
            assert execution["error"] == "Rejected"
            assert f"rejected {n}" in execution["cause"]
            # one attempt + exactly one retry: the retry counter was this execution's own
            assert types.count("TaskScheduled") == 2, types
            assert types.count("TaskFailed") == 2, types
            assert types[-1] == "ExecutionFailed"
            continue
        assert execution["status"] == "SUCCEEDED", (n, execution)
        size = "big" if 2 * n > 10 else "small"
        assert json.loads(execution["output"]) == {
            **payload,
            "first": {"double": 2 * n, "tag": payload["tag"]},
            "size": {"size": size},
            "second": {"double": 4 * n},
        }
        entered = [
            e["stateEnteredEventDetails"]["name"]
            for e in history
            if "stateEnteredEventDetails" in e
        ]
        assert entered == ["First", "Big?", size.capitalize(), "Second"], entered
        assert types.count("TaskScheduled") == 2 and "TaskFailed" not in types, types
        assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
        # event ids are this execution's own sequence 1..N
        assert [e["id"] for e in history] == list(range(1, len(history) + 1))


def test_pass_result_is_not_shared_between_executions(aws_client):
    """A Pass ``Result`` object lives in the cached tree; an execution must not alter it."""
    sfn = aws_client("stepfunctions")
    definition = {
        "StartAt": "Seed",
        "States": {
            "Seed": {"Type": "Pass", "Result": {"items": [1]}, "ResultPath": "$.r", "Next": "Add"},
            "Add": {
                "Type": "Pass",
                "Parameters": {"n.$": "$.n"},
                "ResultPath": "$.r.extra",
                "End": True,
            },
        },
    }
    arn = sfn.create_state_machine(
        name=f"speedups-pass-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn=ROLE,
    )["stateMachineArn"]
    try:
        for n in range(3):
            execution_arn = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"n": n}))[
                "executionArn"
            ]
            execution = _wait(sfn, execution_arn)
            assert execution["status"] == "SUCCEEDED", execution
            assert json.loads(execution["output"]) == {
                "n": n,
                "r": {"items": [1], "extra": {"n": n}},
            }
    finally:
        sfn.delete_state_machine(stateMachineArn=arn)


def test_a_rule_for_status_changes_still_receives_them(aws_client, run_machine):
    """Status-change events are skipped only when no rule could match; here one does."""
    events, sqs = aws_client("events"), aws_client("sqs")
    name = f"speedups-status-{uuid.uuid4().hex[:8]}"
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = {"source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"]}
    events.put_rule(Name=name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": queue_arn}])
    try:
        execution, _ = run_machine(
            {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, {"n": 1}
        )
        seen: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while len(seen) < 2 and time.monotonic() < deadline:
            for message in sqs.receive_message(
                QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                detail = json.loads(message["Body"])["detail"]
                if detail["executionArn"] == execution["executionArn"]:
                    seen[detail["status"]] = detail["name"]
        assert set(seen) == {"RUNNING", "SUCCEEDED"}, seen
    finally:
        events.remove_targets(Rule=name, Ids=["queue"])
        events.delete_rule(Name=name)
        sqs.delete_queue(QueueUrl=queue)


PRINTER = """
def handler(event, context):
    for i in range(3):
        print(f"tag={event['tag']} line={i}")
    return event["tag"]
"""


def test_batched_lambda_logs_keep_every_line_in_order(aws_client, create_function):
    """Twenty concurrent invocations: every line reaches CloudWatch, each invocation in order."""
    lam, logs = aws_client("lambda"), aws_client("logs")
    name = create_function({"handler.py": PRINTER}, "handler.handler", Runtime="python3.13")[
        "FunctionName"
    ]
    tags = [uuid.uuid4().hex[:8] for _ in range(20)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda t: lam.invoke(FunctionName=name, Payload=json.dumps({"tag": t})), tags)
        )
    assert all(a["StatusCode"] == 200 and "FunctionError" not in a for a in answers)

    group, messages = f"/aws/lambda/{name}", []
    deadline = time.monotonic() + 30  # LocalStack ships logs from a background thread
    while time.monotonic() < deadline:
        try:
            pages = logs.get_paginator("filter_log_events").paginate(logGroupName=group)
            messages = [e["message"] for page in pages for e in page["events"]]
        except logs.exceptions.ResourceNotFoundException:
            messages = []
        if sum(m.startswith("REPORT RequestId:") for m in messages) >= len(tags):
            break
        time.sleep(0.5)
    assert sum(m.startswith("REPORT RequestId:") for m in messages) == len(tags)
    for tag in tags:
        lines = [m.strip() for m in messages if f"tag={tag}" in m]
        assert lines == [f"tag={tag} line={i}" for i in range(3)], lines


# Returns who ran it; calls itself synchronously while depth > 0 (each level holds an
# environment busy while the next runs).
NESTED = """
import json, os, time
import boto3

def handler(event, context):
    depth = event["depth"]
    inner = None
    if depth > 0:
        answer = boto3.client("lambda").invoke(
            FunctionName=context.function_name,
            Payload=json.dumps({"tag": event["tag"], "depth": depth - 1, "sleep": 0}),
        )
        inner = json.loads(answer["Payload"].read())
    time.sleep(event.get("sleep", 0))
    return {"tag": event["tag"], "depth": depth, "pid": os.getpid(), "inner": inner}
"""


def test_lambda_invokes_beyond_the_warm_environments_all_answer(aws_client, create_function):
    """More concurrent invocations than warm environments, and a function calling itself three
    levels deep (four environments busy at once): each gets its own answer, none is refused or
    waits for ever; the warm-first wait only delays a new environment."""
    lam = aws_client("lambda")
    name = create_function(
        {"handler.py": NESTED}, "handler.handler", Runtime="python3.13", Timeout=60
    )["FunctionName"]

    def invoke(event: dict) -> dict:
        answer = lam.invoke(FunctionName=name, Payload=json.dumps(event))
        assert answer["StatusCode"] == 200 and "FunctionError" not in answer, answer
        return json.loads(answer["Payload"].read())

    nested = invoke({"tag": "nested", "depth": 3})
    pids, level = [], nested
    for depth in (3, 2, 1, 0):
        assert (level["tag"], level["depth"]) == ("nested", depth)
        pids.append(level["pid"])
        level = level["inner"]
    assert level is None
    assert len(set(pids)) == 4  # four levels busy at once: four environments

    events = [{"tag": uuid.uuid4().hex[:8], "depth": 0, "sleep": 0.2} for _ in range(12)]
    with ThreadPoolExecutor(max_workers=len(events)) as pool:
        answers = list(pool.map(invoke, events))
    assert [a["tag"] for a in answers] == [e["tag"] for e in events]


def test_a_burst_past_the_warm_environments_starts_a_few_at_a_time(aws_client, create_function):
    """24 invokes more than WARM_ENVS at once, 0.3 s each: all answer, and environments past the
    cap start WARM_ENVS at a time. When a busy environment came free, every waiting invoke used to
    see it, one got it and each of the others started an environment: 20 or more here (144
    runtime processes, 6 GB, in the workflow bench's first burst)."""
    lam = aws_client("lambda")
    name = create_function(
        {"handler.py": NESTED}, "handler.handler", Runtime="python3.13", Timeout=60
    )["FunctionName"]
    events = [
        {"tag": uuid.uuid4().hex[:8], "depth": 0, "sleep": 0.3}
        for _ in range(speedups.WARM_ENVS + 24)
    ]

    def invoke(event: dict) -> dict:
        answer = lam.invoke(FunctionName=name, Payload=json.dumps(event))
        assert answer["StatusCode"] == 200 and "FunctionError" not in answer, answer
        return json.loads(answer["Payload"].read())

    with ThreadPoolExecutor(max_workers=len(events)) as pool:
        answers = list(pool.map(invoke, events))
    assert [a["tag"] for a in answers] == [e["tag"] for e in events]
    environments = {a["pid"] for a in answers}
    assert len(environments) <= speedups.WARM_ENVS + 12, len(environments)


def _metric_sum(cloudwatch, namespace: str, metric: str, dimension: dict, since) -> float:
    from datetime import UTC, datetime, timedelta

    points = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[dimension],
        StartTime=since,
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    return sum(p["Sum"] for p in points)


def test_lambda_and_sqs_metrics_still_reach_cloudwatch(aws_client, create_function):
    """Lambda's Invocations and Errors per function and SQS's NumberOfMessagesSent per queue,
    as PutMetricData stored them before."""
    from datetime import UTC, datetime, timedelta

    lam, sqs, cloudwatch = aws_client("lambda"), aws_client("sqs"), aws_client("cloudwatch")
    name = create_function({"handler.py": ECHO}, "handler.handler", Runtime="python3.13")[
        "FunctionName"
    ]
    queue_name = f"speedups-metrics-{uuid.uuid4().hex[:8]}"
    queue = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    since = datetime.now(UTC) - timedelta(minutes=1)
    try:
        for n in range(3):
            event = {"n": n, "tag": "m", "reject": n == 2}
            lam.invoke(FunctionName=name, Payload=json.dumps(event))
            sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(event))

        def figures() -> tuple[float, float, float]:
            function = {"Name": "FunctionName", "Value": name}
            return (
                _metric_sum(cloudwatch, "AWS/Lambda", "Invocations", function, since),
                _metric_sum(cloudwatch, "AWS/Lambda", "Errors", function, since),
                _metric_sum(
                    cloudwatch,
                    "AWS/SQS",
                    "NumberOfMessagesSent",
                    {"Name": "QueueName", "Value": queue_name},
                    since,
                ),
            )

        deadline = time.monotonic() + 30  # both are published from background threads
        while figures() != (3, 1, 3) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert figures() == (3, 1, 3)
    finally:
        sqs.delete_queue(QueueUrl=queue)


def test_internal_calls_still_land_in_the_callers_region(aws_client, emulator):
    """Step Functions -> SQS in a second region: the internal call's region comes from its
    credential scope (patch 11), so the message lands in that region's queue, not in the
    same-named queue of the default region."""
    import boto3

    home = aws_client("sqs").meta.region_name
    other = "eu-west-3" if home != "eu-west-3" else "us-west-2"

    def client(service: str, region: str):
        return boto3.client(service, region_name=region, endpoint_url=emulator.url)

    name = f"speedups-region-{uuid.uuid4().hex[:8]}"
    queues = {region: client("sqs", region).create_queue(QueueName=name)["QueueUrl"]
              for region in (home, other)}  # fmt: skip
    sfn = client("stepfunctions", other)
    definition = {
        "StartAt": "Send",
        "States": {
            "Send": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": queues[other], "MessageBody.$": "$.body"},
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    try:
        assert f":{other}:" in machine
        run = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"body": name}))
        assert _wait(sfn, run["executionArn"])["status"] == "SUCCEEDED"
        got = client("sqs", other).receive_message(QueueUrl=queues[other], WaitTimeSeconds=5)
        assert [m["Body"] for m in got.get("Messages", [])] == [name]
        home_queue = client("sqs", home).receive_message(QueueUrl=queues[home], WaitTimeSeconds=1)
        assert home_queue.get("Messages", []) == []
    finally:
        sfn.delete_state_machine(stateMachineArn=machine)
        for region, url in queues.items():
            client("sqs", region).delete_queue(QueueUrl=url)


# Returns where and as what it ran, with spaces in its JSON (AWS counts the bytes it sent).
WHERE = """
import os

def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"region": os.environ["AWS_REGION"], "arn": context.invoked_function_arn,
            "trace": os.environ.get("_X_AMZN_TRACE_ID", ""), "tag": event["tag"]}
"""


def test_step_functions_invokes_lambda_in_process_as_through_the_gateway(aws_client, emulator):
    """Patch 12: a lambda:invoke task calls the Lambda service in-process. What the task sees
    is what the gateway answered: the function of the state machine's region (a same-named one
    elsewhere is not called), an X-Ray trace id, Content-Length counting the bytes the function
    returned, a function error by its type, and a missing function as
    ``Lambda.ResourceNotFoundException`` with AWS's cause."""
    import boto3

    from tests.emulator.conftest import LAMBDA_ROLE, SFN_ROLE, zip_files

    home = aws_client("lambda").meta.region_name
    other = "eu-west-3" if home != "eu-west-3" else "us-west-2"

    def client(service: str, region: str):
        return boto3.client(service, region_name=region, endpoint_url=emulator.url)

    name = f"speedups-direct-{uuid.uuid4().hex[:8]}"
    for region in (home, other):
        lam = client("lambda", region)
        lam.create_function(
            FunctionName=name,
            Role=LAMBDA_ROLE,
            Handler="handler.handler",
            Runtime="python3.13",
            Code={"ZipFile": zip_files({"handler.py": WHERE})},
        )
        lam.get_waiter("function_active_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
    sfn = client("stepfunctions", other)

    def run(function: str, payload: dict) -> tuple[dict, list[dict]]:
        definition = {
            "StartAt": "Invoke",
            "States": {
                "Invoke": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "End": True,
                    "Parameters": {"FunctionName": function, "Payload": payload},
                }
            },
        }
        machine = sfn.create_state_machine(
            name=f"{name}-{uuid.uuid4().hex[:6]}",
            definition=json.dumps(definition),
            roleArn=SFN_ROLE,
        )["stateMachineArn"]
        try:
            run = sfn.start_execution(stateMachineArn=machine, input="{}")
            return _wait(sfn, run["executionArn"]), _history(sfn, run["executionArn"])
        finally:
            sfn.delete_state_machine(stateMachineArn=machine)

    try:
        ran, events = run(name, {"tag": "direct"})
        assert ran["status"] == "SUCCEEDED", ran
        output = json.loads(ran["output"])
        answer = output["Payload"]
        assert answer["region"] == other and f":{other}:" in answer["arn"]
        assert answer["trace"].startswith("Root=1-"), answer["trace"]
        returned = json.dumps(answer).encode()  # Python's json.dumps: ", " and ": " as sent
        headers = output["SdkHttpMetadata"]["HttpHeaders"]
        assert headers["Content-Length"] == str(len(returned))
        assert headers["x-amzn-RequestId"] == output["SdkResponseMetadata"]["RequestId"]
        assert output["StatusCode"] == 200 and output["ExecutedVersion"] == "$LATEST"

        failed, _ = run(name, {"tag": "x", "fail": True})
        assert (failed["status"], failed["error"]) == ("FAILED", "ValueError")
        assert json.loads(failed["cause"])["errorMessage"] == "asked to fail"

        missing, events = run(f"{name}-missing", {"tag": "x"})
        assert (missing["status"], missing["error"]) == (
            "FAILED",
            "Lambda.ResourceNotFoundException",
        )
        cause = missing["cause"]
        assert cause.startswith(f"Function not found: arn:aws:lambda:{other}:"), cause
        assert (
            "(Service: AWSLambda; Status Code: 404; Error Code: ResourceNotFoundException; "
            "Request ID: "
            in cause
            and cause.endswith("; Proxy: null)")
        ), cause
        assert [e["type"] for e in events if e["type"].startswith("Task")][-1] == "TaskFailed"
    finally:
        for region in (home, other):
            client("lambda", region).delete_function(FunctionName=name)


def test_s3_events_reach_eventbridge_in_process_as_through_the_gateway(emulator):
    """Patch 14: S3 hands its EventBridge events to PutEvents in-process. The event a rule
    delivers is the one AWS documents: the bucket's region and owner, its ARN, the time of the
    write in UTC to the second, the object's key, size and ETag, and the reason; an object
    deleted arrives as such. A same-named rule in another region sees nothing."""
    import re
    from datetime import UTC, datetime

    import boto3

    home = "us-east-1"
    other = "eu-west-3"

    def client(service: str, region: str):
        return boto3.client(service, region_name=region, endpoint_url=emulator.url)

    name = f"speedups-s3-events-{uuid.uuid4().hex[:8]}"
    s3, sqs = client("s3", other), {r: client("sqs", r) for r in (home, other)}
    queues = {r: sqs[r].create_queue(QueueName=name)["QueueUrl"] for r in (home, other)}
    pattern = {"source": ["aws.s3"], "detail": {"bucket": {"name": [name]}}}
    for region, url in queues.items():
        arn = sqs[region].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        events = client("events", region)
        events.put_rule(Name=name, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}])
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": other})
    s3.put_bucket_notification_configuration(
        Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )

    def delivered(region: str, count: int, seconds: float) -> list[dict]:
        got: list[dict] = []
        deadline = time.monotonic() + seconds
        while len(got) < count and time.monotonic() < deadline:
            for message in (
                sqs[region]
                .receive_message(QueueUrl=queues[region], MaxNumberOfMessages=10, WaitTimeSeconds=1)
                .get("Messages", [])
            ):
                got.append(json.loads(message["Body"]))
        return got

    try:
        before = datetime.now(UTC).replace(microsecond=0)
        etag = s3.put_object(Bucket=name, Key="in/one.png", Body=b"x" * 123)["ETag"]
        s3.delete_object(Bucket=name, Key="in/one.png")
        after = datetime.now(UTC)
        created, deleted = sorted(
            delivered(other, 2, 20), key=lambda e: e["detail-type"] != ("Object Created")
        )
        assert created["source"] == "aws.s3" and created["version"] == "0"
        assert (created["region"], created["account"]) == (other, "000000000000")
        assert created["resources"] == [f"arn:aws:s3:::{name}"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created["time"]), created
        when = datetime.strptime(created["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert before <= when <= after, (before, created["time"], after)
        detail = created["detail"]
        assert detail["bucket"] == {"name": name} and detail["reason"] == "PutObject"
        assert (detail["object"]["key"], detail["object"]["size"]) == ("in/one.png", 123)
        assert detail["object"]["etag"] == etag.strip('"')
        assert deleted["detail-type"] == "Object Deleted"
        assert deleted["detail"]["deletion-type"] == "Permanently Deleted"
        assert delivered(home, 1, 2) == []
    finally:
        s3.delete_bucket(Bucket=name)
        for region, url in queues.items():
            events = client("events", region)
            events.remove_targets(Rule=name, Ids=["q"])
            events.delete_rule(Name=name)
            sqs[region].delete_queue(QueueUrl=url)


@pytest.mark.parametrize(
    ("pattern", "may_match"),
    [
        ({"source": ["aws.s3"], "detail-type": ["Object Created"]}, False),  # scones deploy's rule
        ('{"source": ["aws.s3", "my.app"]}', False),
        (None, False),  # a scheduled rule
        ({"source": ["aws.s3", "aws.states"]}, True),
        ({"source": [{"prefix": "aws."}]}, True),
        ({"detail-type": ["Step Functions Execution Status Change"]}, True),
        ("not json", True),
    ],
)
def test_status_events_are_skipped_only_when_no_rule_can_match(pattern, may_match):
    assert speedups._pattern_may_match_states(pattern) is may_match


def test_shared_timers_fire_once_in_order_and_never_when_cancelled():
    """Patch 13's timers (the Lambda keep-alive and start-up timers): each started one fires
    once, at its time, in its own thread; a cancelled one never fires, and thousands of
    cancelled keep-alives (one per invoke) do not pile up in the scheduler."""
    import threading

    fired: list[tuple[int, str]] = []
    done = threading.Event()

    def fire(n: int) -> None:
        fired.append((n, threading.current_thread().name))
        if n == 5:
            done.set()

    timers = [speedups.SharedTimer(0.2 * n, fire, args=(n,)) for n in range(6)]
    for timer in reversed(timers):  # started out of order: fired by due time
        timer.start()
    timers[2].cancel()
    for _ in range(5000):
        keepalive = speedups.SharedTimer(600, fire, args=(-1,))
        keepalive.start()
        keepalive.cancel()
    assert len(speedups.SharedTimer._heap) < 2000
    assert done.wait(10)
    time.sleep(0.1)
    assert [n for n, _ in fired] == [0, 1, 3, 4, 5]
    assert {name for _, name in fired} == {"scones-timer-fired"}
    with pytest.raises(RuntimeError):
        timers[0].start()


SLEEPER = """
import time

def handler(event, context):
    time.sleep(event["s"])
    return {"slept": event["s"]}
"""


def test_state_and_execution_timeouts_still_fire(run_machine, create_function):
    """A Task state's TimeoutSeconds and the machine's still end what overruns with every
    speedup on (the shared program of patch 2, the in-process invoke of patch 12), and what
    finishes in time still succeeds."""
    name = create_function({"handler.py": SLEEPER}, "handler.handler", Runtime="python3.13",
                           Timeout=30)["FunctionName"]  # fmt: skip
    task = {
        "StartAt": "Sleep",
        "States": {
            "Sleep": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": name, "Payload": {"s.$": "$.s"}},
                "TimeoutSeconds": 2,
                "End": True,
            }
        },
    }
    execution, events = run_machine(task, {"s": 0})
    assert execution["status"] == "SUCCEEDED", execution
    execution, events = run_machine(task, {"s": 6})
    assert execution["status"] == "FAILED", execution
    assert execution.get("error") == "States.Timeout", execution
    assert any(e["type"] == "TaskTimedOut" for e in events), [e["type"] for e in events]

    whole = {
        "TimeoutSeconds": 2,
        "StartAt": "Wait",
        "States": {"Wait": {"Type": "Wait", "SecondsPath": "$.s", "End": True}},
    }
    execution, _ = run_machine(whole, {"s": 0})
    assert execution["status"] == "SUCCEEDED", execution
    execution, _ = run_machine(whole, {"s": 6})
    assert execution["status"] == "TIMED_OUT", execution
