"""Fixtures for the Lambda handlers: load a handler file with its environment, events, contexts."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.events import event, png_bytes
from tests.support.server import start_server
from tests.support.tiny_model import build_tiny_model

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_DIR = ROOT / "lambdas"


@dataclass
class FakeContext:
    """The few fields of the Lambda context our handlers could use."""

    function_name: str = "scones-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


def load_lambda(name: str) -> ModuleType:
    """Import lambdas/<name>.py afresh: it reads the environment as it is now, like a cold start."""
    spec = importlib.util.spec_from_file_location(
        f"lambda_{name}_{uuid.uuid4().hex}", LAMBDA_DIR / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()


@pytest.fixture(name="load_lambda")
def load_lambda_fixture():
    """``load_lambda("classify_image")``: the handler module, reading the current environment."""
    return load_lambda


@pytest.fixture(name="event")
def event_fixture():
    """``event("classify_image")``: a fresh copy of tests/events/classify_image.json."""
    return event


@pytest.fixture(name="png")
def png_fixture():
    """``png((r, g, b))``: a small solid-colour image's bytes."""
    return png_bytes


@pytest.fixture(scope="session")
def tiny_endpoint(tmp_path_factory, emulator):
    """A model server on the tiny red-vs-blue model, named like ours plus a course-style alias.

    Red images score class 0 ("bicycle"), blue ones class 1 ("motorcycle"): the handler tests need
    a model whose answer is known, not the trained one.
    """
    model_dir = build_tiny_model(tmp_path_factory.mktemp("tiny-model"), ["bicycle", "motorcycle"])
    log = tmp_path_factory.mktemp("tiny-endpoint") / "server.log"
    server = start_server(
        model_dir,
        log,
        env={
            "SCONES_ENDPOINT_NAME": "scones-classifier",
            "SCONES_ENDPOINT_ALIASES": "image-classification-2021-11-20-23-52-41-234",
            "SCONES_CAPTURE_ENABLED": "0",
        },
    )
    yield server
    server.stop()
