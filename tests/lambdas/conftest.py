"""Fixtures for the Lambda handlers: load a handler file with its environment, events, contexts."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_DIR = ROOT / "lambdas"
EVENTS_DIR = ROOT / "tests" / "events"


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


def event(name: str) -> dict:
    """A JSON event from tests/events/."""
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


def png_bytes(
    color: tuple[int, int, int] = (220, 20, 20), size: int = 32, fmt: str = "PNG"
) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, fmt)
    return buffer.getvalue()


def load_tiny_model_builder():
    """tests/local_model/conftest.py's tiny ONNX model builder (a conftest is not importable)."""
    path = ROOT / "tests" / "local_model" / "conftest.py"
    spec = importlib.util.spec_from_file_location("scones_tests_local_model_conftest", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their module by name
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
    helpers = load_tiny_model_builder()
    model_dir = helpers.build_tiny_model(
        tmp_path_factory.mktemp("tiny-model"), ["bicycle", "motorcycle"]
    )
    log = tmp_path_factory.mktemp("tiny-endpoint") / "server.log"
    server = helpers.start_server(
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
