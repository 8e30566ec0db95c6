"""Fixtures for the emulator tests: real Python functions created from a zip, real executions."""

import io
import json
import time
import uuid
import zipfile

import pytest

LAMBDA_ROLE = "arn:aws:iam::000000000000:role/scones-test-lambda"
SFN_ROLE = "arn:aws:iam::000000000000:role/scones-test-sfn"


def zip_files(files: dict[str, str]) -> bytes:
    """A deployment package holding these files (name -> source)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, source in files.items():
            archive.writestr(name, source)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def create_function(aws_client):
    """Create a zip function, wait until it is Active; returns CreateFunction's answer."""
    lam = aws_client("lambda")

    def create(files: dict[str, str], handler: str, **config) -> dict:
        made = lam.create_function(
            FunctionName=config.pop("FunctionName", f"fn-{uuid.uuid4().hex[:10]}"),
            Role=config.pop("Role", LAMBDA_ROLE),
            Handler=handler,
            Code={"ZipFile": zip_files(files)},
            **config,
        )
        lam.get_waiter("function_active_v2").wait(
            FunctionName=made["FunctionName"], WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        return made

    return create


@pytest.fixture(scope="session")
def run_machine(aws_client):
    """Create a state machine from a definition, run one execution to its end (bounded).

    Returns (DescribeExecution's answer, the execution's history events).
    """
    sfn = aws_client("stepfunctions")

    def run(definition: dict, payload: dict, seconds: float = 90) -> tuple[dict, list[dict]]:
        machine = sfn.create_state_machine(
            name=f"test-{uuid.uuid4().hex[:8]}",
            definition=json.dumps(definition),
            roleArn=SFN_ROLE,
        )["stateMachineArn"]
        arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(payload))[
            "executionArn"
        ]
        deadline = time.monotonic() + seconds
        while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, f"execution still running after {seconds} s"
            time.sleep(0.2)
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return execution, events

    return run
