"""The workflow end to end on the running stack: real model, emulator, notifications, batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scones import config, deploy, stack, workflow

pytestmark = pytest.mark.integration

CLASS_OF_LABEL = {0: "bicycle", 1: "motorcycle"}  # test.lst labels, see the data README
ROOT = Path(__file__).resolve().parents[2]


# ------------------------------ Fixtures ------------------------------


@pytest.fixture(autouse=True)
def state_dir() -> Path:
    """Overrides tests/scones/conftest.py's per-test state dir: these tests drive the session's
    stack (its pid files live in the session's SCONES_STATE_DIR)."""
    return config.STATE_DIR


class Inbox:
    """Reads an SQS queue (the SNS subscription or the review queue) and keeps what it read."""

    def __init__(self, sqs, url: str) -> None:
        self.sqs, self.url, self.messages = sqs, url, []

    def drain(self, wait_s: int = 1) -> None:
        got = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_s,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        for message in got:
            body = json.loads(message["Body"])
            if body.get("Type") == "Notification":  # the SNS envelope
                body = {
                    **json.loads(body["Message"]),
                    "_subject": body.get("Subject"),
                    "_attributes": body.get("MessageAttributes", {}),
                }
            self.messages.append(body)
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def wait_for(self, execution_arn: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.messages if m.get("execution") == execution_arn]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no message for {execution_arn} in {self.url} "
                    f"after {timeout} s (read: {self.messages[-3:]})"
                )
            self.drain()


@pytest.fixture(scope="module")
def deployed(emulator, model_server) -> deploy.DeployResult:
    return deploy.deploy()


@pytest.fixture(scope="module")
def clients(deployed) -> deploy.Clients:
    c = deploy.Clients()
    c.s3, c.sfn, c.sqs  # noqa: B018 -- made once here, shared by test threads later
    return c


@pytest.fixture(scope="module")
def notifications(deployed, clients) -> Inbox:
    return Inbox(clients.sqs, deployed.notifications_queue_url)


@pytest.fixture(scope="module")
def review_queue(deployed, clients) -> Inbox:
    return Inbox(clients.sqs, deployed.review_queue_url)


@pytest.fixture(scope="module")
def truth(shared_data) -> dict[str, str]:
    """Test-split file name -> its true class, from test.lst (the names do not tell)."""
    rows = [line.split("\t") for line in (shared_data / "test.lst").read_text().splitlines()]
    return {row[2]: CLASS_OF_LABEL[int(row[1])] for row in rows}


@pytest.fixture(scope="module")
def run_prefix() -> str:
    return f"e2e/{uuid.uuid4().hex[:8]}/"


def put(clients, key: str, data: bytes) -> str:
    clients.s3.put_object(Bucket=config.BUCKET, Key=key, Body=data)
    return f"s3://{config.BUCKET}/{key}"


def model_probabilities(model_url: str, data: bytes) -> list[float]:
    return model_answer(model_url, data)["prediction"]


def model_answer(model_url: str, data: bytes) -> dict:
    """The verbose answer: prediction (probabilities) and the model's ood_score."""
    import urllib.request

    request = urllib.request.Request(
        model_url + "/invocations",
        data=data,
        headers={"Content-Type": "image/png", "Accept": "application/json;verbose"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def unknown_cut() -> float:
    """The ood_score from which no image passes the deployed threshold (two classes)."""
    return (1 - config.CONFIDENCE_THRESHOLD) / (1 - 1 / 2)


@pytest.fixture(scope="module")
def confident_image(model_server, shared_data, truth) -> tuple[str, bytes]:
    """A test image the model labels above the threshold and knows (ood_score 0), asked
    directly, not assumed."""
    for name in truth:
        data = (shared_data / "test" / name).read_bytes()
        answer = model_answer(model_server.url, data)
        if max(answer["prediction"]) >= config.CONFIDENCE_THRESHOLD and answer["ood_score"] == 0:
            return name, data
    pytest.skip("the model is confident about no test image")


def history(clients, execution_arn: str) -> list[dict]:
    pages = clients.sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    return [e for page in pages for e in page["events"]]


def wait_started_by_event(
    clients, machine_arn: str, key: str, since: datetime, timeout: float = 30
) -> dict | None:
    """The execution whose input names ``key`` (started after ``since``), once it has ended."""
    deadline, seen = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        for e in clients.sfn.list_executions(stateMachineArn=machine_arn)["executions"]:
            if e["startDate"] < since or e["executionArn"] in seen:
                continue
            described = clients.sfn.describe_execution(executionArn=e["executionArn"])
            payload = json.loads(described["input"])
            seen[e["executionArn"]] = (
                payload.get("detail", {}).get("object", {}).get("key", payload.get("s3_key"))
            )
            if seen[e["executionArn"]] == key:
                return workflow.wait(clients, e["executionArn"], timeout)
        time.sleep(0.2)
    return None


# ------------------------------ One image ------------------------------


def test_test_split_images_end_with_the_right_label(
    deployed, clients, shared_data, truth, run_prefix
):
    """Eight of each class; a confident wrong label is counted (and shown), never skipped."""
    picked = [n for n in truth if truth[n] == "bicycle"][:8]
    picked += [n for n in truth if truth[n] == "motorcycle"][:8]
    uris = {
        n: put(clients, f"{run_prefix}split/{n}", (shared_data / "test" / n).read_bytes())
        for n in picked
    }

    with ThreadPoolExecutor(4) as pool:
        results = pool.map(lambda n: workflow.run_image(uris[n], 120, clients), picked)
        outcomes = dict(zip(picked, results, strict=True))

    right = [n for n, o in outcomes.items() if o.status == "SUCCEEDED" and o.label == truth[n]]
    wrong = [n for n, o in outcomes.items() if o.status == "SUCCEEDED" and o.label != truth[n]]
    review = [
        n
        for n, o in outcomes.items()
        if o.error in ("ThresholdConfidenceNotMet", "NotATwoWheeler")  # both go to review
    ]
    print(f"right {len(right)}, confident but wrong {len(wrong)} {wrong}, review {len(review)}")
    assert len(right) + len(wrong) + len(review) == len(picked)  # nothing else happened
    assert {truth[n] for n in right} == {"bicycle", "motorcycle"}
    assert len(right) > len(wrong)
    for name in right:
        outcome = outcomes[name]
        assert outcome.confidence >= config.CONFIDENCE_THRESHOLD
        assert outcome.loading_bay == json.loads(config.LOADING_BAYS)[outcome.label]


def test_non_image_fails_with_a_named_error_and_a_notification(
    deployed, clients, notifications, run_prefix
):
    uri = put(clients, f"{run_prefix}test.lst", b"0\t0\tbicycle_s_000030.png\n")

    outcome = workflow.run_image(uri, 60, clients)

    assert (outcome.status, outcome.error) == ("FAILED", "NotAnImage")
    message = notifications.wait_for(outcome.execution_arn)
    assert message["outcome"] == "failed"
    assert (message["error"], message["state"]) == ("NotAnImage", "SerializeImageData")
    assert message["s3_key"] == f"{run_prefix}test.lst"
    assert "not a PNG or JPEG" in message["cause"]


def test_missing_key_fails_with_a_named_error_and_a_notification(
    deployed, clients, notifications, run_prefix
):
    key = f"{run_prefix}never-uploaded.png"

    outcome = workflow.run_image(f"s3://{config.BUCKET}/{key}", 60, clients)

    assert (outcome.status, outcome.error) == ("FAILED", "ImageNotFound")
    message = notifications.wait_for(outcome.execution_arn)
    assert (message["error"], message["s3_key"]) == ("ImageNotFound", key)


def test_an_event_naming_no_object_fails_with_invalid_event(deployed, clients, notifications):
    arn = workflow.start(clients, deployed.state_machines["image_workflow"], {"hello": "world"})

    described = workflow.wait(clients, arn, 30)

    assert (described["status"], described["error"]) == ("FAILED", "InvalidEvent")
    assert notifications.wait_for(arn)["state"] == "ReadEvent"


def test_wait_first_asks_after_first_poll_s(deployed, clients):
    """The bench's latency runs do not ask before the execution can have ended: each
    DescribeExecution costs the emulator CPU the execution also needs."""
    asked: list[float] = []

    def count(**_: object) -> None:
        asked.append(time.monotonic())

    clients.sfn.meta.events.register("before-call.sfn.DescribeExecution", count)
    try:
        began = time.monotonic()
        arn = workflow.start(clients, deployed.state_machines["image_workflow"], {"hello": "x"})
        described = workflow.wait(clients, arn, 30, first_poll_s=1.0)
    finally:
        clients.sfn.meta.events.unregister("before-call.sfn.DescribeExecution", count)

    assert (described["status"], described["error"]) == ("FAILED", "InvalidEvent")
    assert asked and asked[0] - began >= 1.0


def test_low_confidence_goes_to_the_review_queue_with_a_notification(
    deployed, clients, notifications, review_queue, confident_image, run_prefix
):
    """Deployed with threshold 1.01 (a test deployment parameter), no image can pass."""
    name, data = confident_image
    uri = put(clients, f"{run_prefix}review/{name}", data)
    try:
        deploy.deploy(threshold=1.01)
        outcome = workflow.run_image(uri, 60, clients)
    finally:
        deploy.deploy()

    assert (outcome.status, outcome.error) == ("FAILED", "ThresholdConfidenceNotMet")
    assert "1.01" in outcome.cause
    item = review_queue.wait_for(outcome.execution_arn)
    assert item["s3_key"] == f"{run_prefix}review/{name}"
    assert len(item["inferences"]) == len(deploy.class_names())
    message = notifications.wait_for(outcome.execution_arn)
    assert (message["outcome"], message["error"]) == ("review", "ThresholdConfidenceNotMet")
    assert message["_attributes"]["outcome"]["Value"] == "review"


def test_an_image_the_model_is_unsure_about_goes_to_review(
    deployed, clients, model_server, shared_data, truth, review_queue, run_prefix
):
    """With the deployed threshold: the first test image the model scores below it (and does not
    call unknown), if any."""
    for name in truth:
        data = (shared_data / "test" / name).read_bytes()
        answer = model_answer(model_server.url, data)
        if max(answer["prediction"]) < config.CONFIDENCE_THRESHOLD and (
            answer["ood_score"] < unknown_cut()
        ):
            break
    else:
        pytest.skip("the model is confident about every test image")

    outcome = workflow.run_image(put(clients, f"{run_prefix}unsure/{name}", data), 60, clients)

    assert (outcome.status, outcome.error) == ("FAILED", "ThresholdConfidenceNotMet")
    assert "below the threshold" in outcome.cause
    assert review_queue.wait_for(outcome.execution_arn)["s3_key"].endswith(name)


def test_an_image_like_no_two_wheeler_goes_to_review_as_not_a_two_wheeler(
    deployed, clients, model_server, notifications, review_queue, run_prefix
):
    """The real model and stack: noise (no vehicle at all) scores as unknown, so the reason in
    the execution, the review queue message and the notification is NotATwoWheeler."""
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "PNG")
    data = buffer.getvalue()
    assert model_answer(model_server.url, data)["ood_score"] >= unknown_cut()

    outcome = workflow.run_image(put(clients, f"{run_prefix}unknown/noise.png", data), 60, clients)

    assert (outcome.status, outcome.error) == ("FAILED", "NotATwoWheeler")
    assert "does not look like any of bicycle, motorcycle" in outcome.cause
    item = review_queue.wait_for(outcome.execution_arn)
    assert item["s3_key"] == f"{run_prefix}unknown/noise.png"
    assert item["error"] == "NotATwoWheeler"
    message = notifications.wait_for(outcome.execution_arn)
    assert (message["outcome"], message["error"]) == ("review", "NotATwoWheeler")


def endpoint_retry(asl: dict) -> dict:
    return next(
        r
        for r in asl["States"]["ClassifyImage"]["Retry"]
        if "EndpointUnavailable" in r["ErrorEquals"]
    )


def classify_failures(events: list[dict], classify_arn: str) -> tuple[list[dict], list[dict]]:
    """ClassifyImage's attempts and its EndpointUnavailable failures, in one history."""
    attempts = [
        e
        for e in events
        if e["type"] == "TaskScheduled"
        and classify_arn in e["taskScheduledEventDetails"]["parameters"]
    ]
    failures = [
        e
        for e in events
        if e["type"] == "TaskFailed"
        and e["taskFailedEventDetails"]["error"] == "EndpointUnavailable"
    ]
    return attempts, failures


def test_endpoint_retry_budget_outlasts_a_60_s_outage_on_average_twice_over():
    """Full jitter waits a uniform share of each capped interval: half of their sum on average."""
    asl = json.loads((ROOT / "statemachine" / "image_workflow.asl.json").read_text())
    for retry in (endpoint_retry(asl), asl["States"]["SerializeImageData"]["Retry"][0]):
        waits = [
            min(retry["IntervalSeconds"] * retry["BackoffRate"] ** k, retry["MaxDelaySeconds"])
            for k in range(retry["MaxAttempts"])
        ]
        assert sum(waits) / 2 >= 2 * 60
        assert retry["JitterStrategy"] == "FULL"


def test_model_server_outage_shorter_than_the_retry_budget_is_absorbed(
    deployed, clients, confident_image, run_prefix
):
    name, data = confident_image
    uri = put(clients, f"{run_prefix}outage/{name}", data)
    model = next(c for c in stack.components() if c.name == "model")
    machine = workflow.state_machine_arn(clients, "image_workflow")
    stack.stop(model)
    try:
        arn = workflow.start(clients, machine, workflow.image_input(*workflow.parse_s3_uri(uri)))
        time.sleep(6)  # at least two refused attempts
    finally:
        stack.start(model, 90)

    outcome = workflow.wait(clients, arn, 300)

    assert outcome["status"] == "SUCCEEDED"
    attempts, failures = classify_failures(
        history(clients, arn), deployed.functions["classify_image"]
    )
    assert len(failures) >= 1 and len(attempts) == len(failures) + 1  # retried, visibly


def test_outage_past_the_budget_fails_named_notified_and_redrive_recovers_it_once(
    deployed, clients, notifications, confident_image, run_prefix, tmp_path
):
    """The real definition with a one-retry budget, beside the deployed one (same functions)."""
    from scones import recovery

    name, data = confident_image
    uri = put(clients, f"{run_prefix}outage-long/{name}", data)
    asl = json.loads((ROOT / "statemachine" / "image_workflow.asl.json").read_text())
    endpoint_retry(asl).update(IntervalSeconds=1, MaxAttempts=1, MaxDelaySeconds=1)
    short = tmp_path / "short.asl.json"
    short.write_text(json.dumps(asl))
    definition = deploy.render_definition(
        short,
        {
            "SerializeImageDataFunctionArn": deployed.functions["serialize_image_data"],
            "ClassifyImageFunctionArn": deployed.functions["classify_image"],
            "FilterInferencesFunctionArn": deployed.functions["filter_inferences"],
            "ReviewQueueUrl": deployed.review_queue_url,
            "NotificationTopicArn": deployed.topic_arn,
        },
    )
    machine = clients.sfn.create_state_machine(
        name=f"scones-short-retry-{uuid.uuid4().hex[:8]}",
        definition=definition,
        roleArn=deployed.roles["states"],
    )["stateMachineArn"]
    model = next(c for c in stack.components() if c.name == "model")
    stack.stop(model)
    try:
        arn = workflow.start(clients, machine, workflow.image_input(*workflow.parse_s3_uri(uri)))
        down = workflow.wait(clients, arn, 120)
    finally:
        stack.start(model, 90)

    assert (down["status"], down.get("error")) == ("FAILED", "EndpointUnavailable")
    attempts, failures = classify_failures(
        history(clients, arn), deployed.functions["classify_image"]
    )
    assert len(attempts) == len(failures) == 2  # every retry visible
    message = notifications.wait_for(arn)
    assert (message["error"], message["state"]) == ("EndpointUnavailable", "ClassifyImage")

    first = recovery.redrive(clients, machine=machine)
    again = recovery.redrive(clients, machine=machine)

    assert [r["execution"] for r in first.redriven] == [arn]
    assert again.redriven == []  # RedriveExecution's rule: a failure is redriven once
    redriven = workflow.wait(clients, first.redriven[0]["new"], 60)
    assert redriven["status"] == "SUCCEEDED"
    assert json.loads(redriven["input"]) == json.loads(down["input"])


def test_a_course_lambda_reaches_our_model_under_its_own_endpoint_name(
    deployed, clients, aws_client, confident_image, monkeypatch
):
    """A student's classify code, endpoint name hard-coded, mapped by SCONES_ENDPOINT_ALIASES."""
    import base64
    import io
    import zipfile

    course_name = "image-classification-2021-11-20-23-52-41-234"
    code = (
        "import base64, boto3, json\n"
        f"ENDPOINT = '{course_name}'\n"
        "runtime = boto3.client('sagemaker-runtime')\n"
        "def lambda_handler(event, context):\n"
        "    image = base64.b64decode(event['body']['image_data'])\n"
        "    response = runtime.invoke_endpoint(EndpointName=ENDPOINT,\n"
        "        ContentType='image/png', Body=image)\n"
        "    event['body']['inferences'] = response['Body'].read().decode('utf-8')\n"
        "    return {'statusCode': 200, 'body': event['body']}\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lambda_function.py", code)
    lam = aws_client("lambda")
    function = f"{config.RESOURCE_PREFIX}-test-course-classify"
    model = next(c for c in stack.components() if c.name == "model")
    # SCONES_ENDPOINT_ALIASES=<that name>, as a user would set it; the server reads it at start.
    monkeypatch.setattr(config, "ENDPOINT_ALIASES", [*config.ENDPOINT_ALIASES, course_name])
    stack.stop(model)
    stack.start(model, 90)
    try:
        lam.create_function(
            FunctionName=function,
            Runtime=config.LAMBDA_RUNTIME,
            Role=deployed.roles["lambda"],
            Handler="lambda_function.lambda_handler",
            Code={"ZipFile": buffer.getvalue()},
            Timeout=30,
            Environment={"Variables": {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": config.model_url()}},
        )
        lam.get_waiter("function_active_v2").wait(FunctionName=function)
        event = {
            "statusCode": 200,
            "body": {
                "image_data": base64.b64encode(confident_image[1]).decode(),
                "s3_bucket": config.BUCKET,
                "s3_key": "x.png",
                "inferences": [],
            },
        }
        response = lam.invoke(FunctionName=function, Payload=json.dumps(event))
        result = json.loads(response["Payload"].read())
    finally:
        lam.delete_function(FunctionName=function)

    assert "FunctionError" not in response, result
    assert len(json.loads(result["body"]["inferences"])) == len(deploy.class_names())


# ------------------------------ Event-driven ------------------------------


def test_an_upload_to_incoming_starts_an_execution_by_itself(deployed, clients, confident_image):
    name, data = confident_image
    key = f"{config.INCOMING_PREFIX}e2e-{uuid.uuid4().hex[:8]}/{name}"
    since = datetime.now(UTC)

    put(clients, key, data)  # no StartExecution from the test: EventBridge does it

    described = wait_started_by_event(
        clients, deployed.state_machines["image_workflow"], key, since
    )
    assert described is not None, f"no execution for s3://{config.BUCKET}/{key}"
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["s3_key"] == key


def test_an_upload_elsewhere_starts_nothing(deployed, clients, confident_image):
    name, data = confident_image
    key = f"{config.UPLOAD_PREFIX}e2e-{uuid.uuid4().hex[:8]}/{name}"
    since = datetime.now(UTC)

    put(clients, key, data)

    assert (
        wait_started_by_event(
            clients, deployed.state_machines["image_workflow"], key, since, timeout=3
        )
        is None
    )


# ------------------------------ Batch and CLI ------------------------------


@pytest.mark.slow
def test_a_batch_of_200_keys_is_summarised_and_adds_up(
    deployed, clients, shared_data, truth, run_prefix
):
    names = [n for n in truth if truth[n] == "bicycle"][:100]
    names += [n for n in truth if truth[n] == "motorcycle"][:100]
    prefix = f"{run_prefix}batch/"
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda n: put(clients, prefix + n, (shared_data / "test" / n).read_bytes()), names
            )
        )

    outcome = workflow.run_batch(f"s3://{config.BUCKET}/{prefix}", 900, clients)

    assert outcome.status == "SUCCEEDED", outcome.cause
    summary = outcome.summary
    assert summary["total"] == 200
    assert sum(summary["outcomes"].values()) == 200
    assert sum(summary["labels"].values()) == summary["outcomes"]["succeeded"]
    assert sorted(item["s3_key"] for item in summary["items"]) == sorted(prefix + n for n in names)
    confident = [i for i in summary["items"] if i["outcome"] == "succeeded"]
    wrong = [i for i in confident if i["label"] != truth[i["s3_key"][len(prefix) :]]]
    print(
        f"batch: {summary['outcomes']}, labels {summary['labels']}, "
        f"confident but wrong {len(wrong)} of {len(confident)}"
    )
    assert summary["outcomes"]["failed"] == 0, summary["errors"]  # all 200 are real images
    assert len(wrong) < len(confident) - len(wrong)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scones", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
        cwd=ROOT,
    )


def test_scones_run_prints_the_outcome_as_json(deployed, confident_image, tmp_path):
    name, data = confident_image
    image = tmp_path / name
    image.write_bytes(data)

    done = _cli("run", str(image), "--json")

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "SUCCEEDED"
    assert result["s3_uri"].startswith(f"s3://{config.BUCKET}/{config.UPLOAD_PREFIX}")
    assert {"label", "confidence", "error", "execution_arn"} <= set(result)


def test_scones_batch_prints_the_summary_as_json(deployed, clients, confident_image, run_prefix):
    name, data = confident_image
    prefix = f"{run_prefix}cli-batch/"
    for i in range(3):
        put(clients, f"{prefix}{i}-{name}", data)

    done = _cli("batch", f"s3://{config.BUCKET}/{prefix}", "--json")

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["summary"]["total"] == 3
    assert result["summary"]["outcomes"]["succeeded"] == 3


def test_scones_run_exits_1_when_the_workflow_says_no(deployed, tmp_path):
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("not a picture")

    done = _cli("run", str(not_an_image), "--json")

    assert done.returncode == 1, done.stderr  # the workflow said no: not a usage error (2)
    result = json.loads(done.stdout)
    assert (result["status"], result["error"]) == ("FAILED", "NotAnImage")


def test_scones_run_before_deploy_says_what_to_do(emulator, monkeypatch):
    monkeypatch.setenv("SCONES_RESOURCE_PREFIX", "scones-never-deployed")

    done = _cli("run", "s3://whatever/x.png")

    assert done.returncode == 1
    assert "scones deploy" in done.stderr
