"""Session fixtures: the real emulator and model server, started once per test session."""

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The test stack lives beside a user's own: own state dir and ports, the shared emulator venv.
os.environ.setdefault("SCONES_STATE_DIR", str(ROOT / ".scones" / "test-stack"))
os.environ.setdefault("SCONES_EMULATOR_VENV", str(ROOT / ".scones" / "localstack-venv"))
os.environ.setdefault("SCONES_EMULATOR_PORT", "4599")
os.environ.setdefault("SCONES_MODEL_PORT", "8599")
os.environ.pop("SCONES_TARGET", None)  # tests run against the local target

from scones import config, stack  # noqa: E402

config.apply_target_env()
os.environ["AWS_ENDPOINT_URL"] = config.emulator_url()  # never a real AWS endpoint in tests

SHARED_DATA = ROOT.parent / "shared" / "data" / "cifar100-scones"


@dataclass
class RunningService:
    """A component of the test stack and where it listens."""

    name: str
    url: str


def _component(name: str) -> stack.Component:
    return next(c for c in stack.components() if c.name == name)


@pytest.fixture(scope="session")
def emulator() -> RunningService:
    """LocalStack core with our Lambda executor, on 127.0.0.1, stopped at the end of the session."""
    component = _component("emulator")
    if stack._read_pid(component) is None:
        stack.reset()  # each session starts empty, as before the emulator kept its state
    stack.start(component, config.EMULATOR_START_TIMEOUT)
    yield RunningService("emulator", component.url)
    stack.stop(component)


@pytest.fixture(scope="session")
def aws_client(emulator):
    """Factory for boto3 clients bound to the emulator: `aws_client("s3")`."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=config.REGION)
    retry = Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=120)

    def make(service: str):
        return session.client(service, endpoint_url=emulator.url, config=retry)

    return make


@pytest.fixture(scope="session")
def model_server(emulator) -> RunningService:
    """The local SageMaker endpoint serving the default model (captures go to the emulator)."""
    component = _component("model")
    stack.start(component, 60)
    yield RunningService("model", component.url)
    stack.stop(component)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real CIFAR-100 bicycle/motorcycle images beside the repository."""
    if not (SHARED_DATA / "test.lst").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (needs ../shared beside the repo)")
    return SHARED_DATA
