"""Fixtures for the model server: a tiny ONNX model directory and running server processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.server import ServerProcess, start_server
from tests.support.tiny_model import TINY_CLASSES, build_tiny_model


@pytest.fixture(scope="session")
def make_tiny_model():
    """The builder itself, for tests that need a variant (other classes, other folder)."""
    return build_tiny_model


@pytest.fixture(scope="session")
def tiny_classes() -> list[str]:
    return list(TINY_CLASSES)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A model directory with the tiny red-vs-blue ONNX model."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def launch_server():
    """``start_server`` itself; the test stops what it starts (``server.stop()``)."""
    return start_server


@pytest.fixture(scope="session")
def capture_bucket(aws_client) -> str:
    """An emulator bucket for capture files."""
    name = "scones-capture-tests"
    aws_client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def tiny_server(tiny_model_dir, tmp_path_factory, emulator, capture_bucket) -> ServerProcess:
    """The server on the tiny model, capturing everything to the emulator, with one alias."""
    tmp = tmp_path_factory.mktemp("tiny-server")
    server = start_server(
        tiny_model_dir,
        tmp / "server.log",
        ["--capture", "--capture-destination", f"s3://{capture_bucket}/shared-server"],
        {
            "SCONES_ENDPOINT_NAME": "scones-classifier",
            "SCONES_ENDPOINT_ALIASES": "their-endpoint, other-name",
            "SCONES_CAPTURE_SPOOL_DIR": str(tmp / "spool"),
            "SCONES_CAPTURE_FLUSH_SECONDS": "0.5",
            "AWS_ENDPOINT_URL": emulator.url,
        },
    )
    yield server
    server.stop()
