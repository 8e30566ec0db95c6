"""Fixtures for the emulator tests: real Python functions created from a zip."""

import io
import uuid
import zipfile

import pytest

LAMBDA_ROLE = "arn:aws:iam::000000000000:role/scones-test-lambda"


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
