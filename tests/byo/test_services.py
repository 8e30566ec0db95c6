"""`scones import` of a non-course project that uses DynamoDB, CloudWatch and a Distributed Map.

labels_project/ (written by us, shaped like the third-party projects import was tried on) is
imported unchanged: import finds the services its code and definition call, enables them on the
running emulator (DynamoDB through moto, no Java), and refuses at once a project using a service
that cannot run here. Runs end as on AWS, Distributed Map tolerance included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scones import aws, byo, imported

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parent / "labels_project"
ACCOUNT, REGION = "123456789012", "us-east-1"  # what the project's ARNs name


@pytest.fixture(scope="module")
def labels(emulator):
    """The project imported, and the user's two tables (their own infrastructure on AWS)."""
    result = byo.import_project(PROJECT / "statemachine.json", [PROJECT / "lambdas"],
                                name="scones-labels")  # fmt: skip
    dynamodb = aws.AccountClients(ACCOUNT, REGION)("dynamodb")
    for table, key in (("vehicle-labels", "image"), ("vehicle-runs", "run")):
        if table not in dynamodb.list_tables()["TableNames"]:
            dynamodb.create_table(
                TableName=table, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            )  # fmt: skip
    return result


def test_import_finds_the_services_code_and_definition_use(labels):
    assert set(labels.services) == {"lambda", "dynamodb", "cloudwatch"}
    assert {"dynamodb", "cloudwatch"} <= set(imported.services())  # kept for restarts
    uses = byo.source_services(PROJECT / "lambdas" / "recordLabel.py")
    assert [(u.service, u.where.rsplit(":", 1)[1]) for u in uses] == [
        ("dynamodb", "4"), ("cloudwatch", "5")
    ]  # fmt: skip
    pointers = {
        u.where
        for u in byo.definition_services(json.loads((PROJECT / "statemachine.json").read_text()))
        if u.service == "dynamodb"
    }
    assert pointers == {"/States/Mark Run Done/Resource", "/States/Mark Run Failed/Resource"}


def test_run_writes_dynamodb_and_cloudwatch_offline(labels):
    event = json.loads((PROJECT / "events" / "good.json").read_text())
    execution = byo.execute("scones-labels", event)

    assert execution.status == "SUCCEEDED", execution.described.get("cause")
    output = json.loads(execution.described["output"])
    assert output["recorded"] == [{"image": i["image"], "stored": True} for i in event["labels"]]
    clients = aws.AccountClients(ACCOUNT, REGION)
    dynamodb = clients("dynamodb")
    run = dynamodb.get_item(TableName="vehicle-runs", Key={"run": {"S": "run-1"}})["Item"]
    assert run["status"] == {"S": "DONE"}
    for item in event["labels"]:
        stored = dynamodb.get_item(TableName="vehicle-labels", Key={"image": {"S": item["image"]}})
        assert stored["Item"]["label"] == {"S": item["label"]}
    metrics = clients("cloudwatch").list_metrics(Namespace="SconesLabels")["Metrics"]
    assert {m["Dimensions"][0]["Value"] for m in metrics} == {"bicycle", "motorcycle"}


def test_one_failed_child_fails_the_map_and_its_catch_marks_the_run(labels):
    """No ToleratedFailureCount: one failed child fails the Map Run with
    States.ExceedToleratedFailureThreshold (AWS), which the project's Catch handles."""
    event = json.loads((PROJECT / "events" / "one_bad.json").read_text())
    execution = byo.execute("scones-labels", event)

    assert execution.status == "SUCCEEDED", execution.described.get("cause")
    output = json.loads(execution.described["output"])
    assert output["error"]["Error"] == "States.ExceedToleratedFailureThreshold"
    dynamodb = aws.AccountClients(ACCOUNT, REGION)("dynamodb")
    run = dynamodb.get_item(TableName="vehicle-runs", Key={"run": {"S": "run-2"}})["Item"]
    assert run["status"] == {"S": "FAILED"}
    started = next(e for e in execution.events if e["type"] == "MapRunStarted")
    run_arn = started["mapRunStartedEventDetails"]["mapRunArn"]
    children = aws.AccountClients(ACCOUNT, REGION)("stepfunctions").list_executions(
        mapRunArn=run_arn
    )["executions"]
    assert sorted(c["status"] for c in children) == ["FAILED", "SUCCEEDED", "SUCCEEDED"]


def test_a_service_that_cannot_run_here_is_refused_at_import(emulator):
    clean = "109876543212"  # an account nothing else uses: shows nothing was deployed
    with pytest.raises(byo.ServiceUnavailable) as refused:
        byo.import_project(PROJECT / "kinesis.json", [PROJECT / "lambdas"],
                           name="scones-labels-kinesis", account=clean)  # fmt: skip
    assert str(refused.value) == (
        "this project uses AWS services that cannot run on this machine: kinesis "
        "(/States/Mark Run Done/Resource): LocalStack's Kinesis runs kinesis-mock, which it "
        "downloads at first use"
    )
    clients = aws.AccountClients(clean, REGION)
    assert clients("stepfunctions").list_state_machines()["stateMachines"] == []
    assert clients("lambda").list_functions()["Functions"] == []
