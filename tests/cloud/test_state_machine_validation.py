"""Cloud deploy asks Step Functions to validate a definition before creating or updating it.

botocore's Stubber checks each request and the order; an unexpected call (a create after a
rejected definition) fails the test.
https://docs.aws.amazon.com/step-functions/latest/apireference/API_ValidateStateMachineDefinition.html
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from scones import config, deploy

ACCOUNT = "123456789012"
REGION = "eu-west-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/scones-states-role"
DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:scones-image-workflow"


@pytest.fixture
def sfn(monkeypatch):
    """A Deployer on the cloud target whose Step Functions client is stubbed."""
    monkeypatch.setattr(config, "TARGET", "cloud")
    monkeypatch.setattr(config, "REGION", REGION)
    monkeypatch.setattr(deploy, "render_definition", lambda path, subs: DEFINITION)
    session = boto3.session.Session(
        region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    client = session.client("stepfunctions")
    clients = deploy.Clients.__new__(deploy.Clients)  # no boto3 session to the emulator
    clients._clients = {"stepfunctions": client}
    clients._identity = {"Account": ACCOUNT, "Arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/x/y"}
    deployer = deploy.Deployer(clients)
    deployer.result.roles["states"] = ROLE
    with Stubber(client) as stub:
        yield deployer, stub
        stub.assert_no_pending_responses()


def _missing(stub: Stubber) -> None:
    stub.add_client_error(
        "describe_state_machine",
        service_error_code="StateMachineDoesNotExist",
        http_status_code=400,
        expected_params={"stateMachineArn": ARN},
    )


def _validate(stub: Stubber, result: str, diagnostics: list | None = None) -> None:
    stub.add_response(
        "validate_state_machine_definition",
        {"result": result, "diagnostics": diagnostics or []},
        {"definition": DEFINITION, "type": "STANDARD", "severity": "ERROR"},
    )


def test_a_new_state_machine_is_validated_then_created(sfn) -> None:
    deployer, stub = sfn
    _missing(stub)
    _validate(stub, "OK")
    stub.add_response(
        "create_state_machine",
        {"stateMachineArn": ARN, "creationDate": datetime(2025, 1, 1, tzinfo=UTC)},
        {"name": "scones-image-workflow", "definition": DEFINITION, "roleArn": ROLE,
         "type": "STANDARD"},
    )  # fmt: skip
    assert deployer.state_machine("image_workflow", {}) == ARN


def test_a_definition_aws_rejects_is_never_created(sfn) -> None:
    deployer, stub = sfn
    _missing(stub)
    problem = {
        "severity": "ERROR",
        "code": "SCHEMA_VALIDATION_FAILED",
        "message": "The value for the field 'Type' must be one of ...",
        "location": "/States/Done",
    }
    _validate(stub, "FAIL", [problem])
    with pytest.raises(deploy.DeployError, match="SCHEMA_VALIDATION_FAILED at /States/Done"):
        deployer.state_machine("image_workflow", {})


def test_a_changed_definition_is_validated_before_the_update(sfn) -> None:
    deployer, stub = sfn
    stub.add_response(
        "describe_state_machine",
        {"stateMachineArn": ARN, "name": "scones-image-workflow", "definition": "{}",
         "roleArn": ROLE, "type": "STANDARD", "creationDate": datetime(2025, 1, 1, tzinfo=UTC)},
        {"stateMachineArn": ARN},
    )  # fmt: skip
    _validate(stub, "OK")
    stub.add_response(
        "update_state_machine",
        {"updateDate": datetime(2025, 1, 2, tzinfo=UTC)},
        {"stateMachineArn": ARN, "definition": DEFINITION, "roleArn": ROLE},
    )
    deployer.state_machine("image_workflow", {})


def test_an_unchanged_state_machine_needs_no_call_but_the_describe(sfn) -> None:
    deployer, stub = sfn
    stub.add_response(
        "describe_state_machine",
        {"stateMachineArn": ARN, "name": "scones-image-workflow", "definition": DEFINITION,
         "roleArn": ROLE, "type": "STANDARD", "creationDate": datetime(2025, 1, 1, tzinfo=UTC)},
        {"stateMachineArn": ARN},
    )  # fmt: skip
    assert deployer.state_machine("image_workflow", {}) == ARN
