"""Fixtures for the model server: a tiny ONNX model directory and running server processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY_CLASSES = ["reddish", "bluish"]  # not alphabetical: the order must come from model.json
START_TIMEOUT = 60.0  # seconds for a server to answer /ping
STOP_TIMEOUT = 40.0  # graceful shutdown includes flushing capture to S3


def build_tiny_model(
    model_dir: Path, classes: list[str] = TINY_CLASSES, with_torch: bool = False
) -> Path:
    """A 32x32 classifier whose first class wins on red images and second on blue ones.

    conv 1x1 (identity) -> global average pool -> linear -> softmax, dynamic batch, plus an
    "ood_score" output that is high on green images (neither class: the unknown-image signal;
    grey ones stay merely unsure), following the model-directory contract (model.onnx + model.json);
    ``with_torch`` adds the same network as model.pt2 (torch.export, for the benchmark baseline).
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model_dir.mkdir(parents=True, exist_ok=True)
    conv_w = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
    gemm_w = np.array([[4.0, 0.0, -4.0], [-4.0, 0.0, 4.0]], dtype=np.float32)  # red vs blue
    gemm_b = np.zeros(2, dtype=np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "conv_w"], ["features"]),
        helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "gemm_w", "gemm_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        # ood_score = clip(normalised green - 1, 0, 1): 0 on grey, red and blue, 1 on pure green
        helper.make_node("Gather", ["flat", "green"], ["green_level"], axis=1),
        helper.make_node("Sub", ["green_level", "one"], ["green_excess"]),
        helper.make_node("Clip", ["green_excess", "zero", "one"], ["ood_score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("ood_score", TensorProto.FLOAT, ["batch"]),
        ],
        [
            numpy_helper.from_array(conv_w, "conv_w"),
            numpy_helper.from_array(gemm_w, "gemm_w"),
            numpy_helper.from_array(gemm_b, "gemm_b"),
            numpy_helper.from_array(np.array(1, dtype=np.int64), "green"),
            numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime we support
    onnx.checker.check_model(model)
    onnx.save(model, model_dir / "model.onnx")
    meta = {
        "classes": classes,
        "input": {
            "name": "input",
            "height": 32,
            "width": 32,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
        "outputs": {"probabilities": "probabilities", "ood_score": "ood_score"},
    }
    (model_dir / "model.json").write_text(json.dumps(meta, indent=2))
    if with_torch:
        _save_torch_twin(model_dir / "model.pt2", conv_w, gemm_w, gemm_b)
    return model_dir


def _save_torch_twin(path: Path, conv_w, gemm_w, gemm_b) -> None:
    """The same network in PyTorch (torch.export): the benchmark baseline's model.pt2."""
    import torch

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 3, 1, bias=False),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(3, 2),
        torch.nn.Softmax(dim=1),
    )
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(conv_w))
        net[3].weight.copy_(torch.from_numpy(gemm_w))
        net[3].bias.copy_(torch.from_numpy(gemm_b))
    exported = torch.export.export(net.eval(), (torch.zeros(1, 3, 32, 32),))
    torch.export.save(exported, str(path))


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """A model server started by a test, on its own port."""

    proc: subprocess.Popen
    url: str
    log: Path

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait for the graceful exit (SIGKILL only after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    model_dir: Path, log: Path, args: list[str] = (), env: dict[str, str] | None = None
) -> ServerProcess:
    """`python -m local_model.serve` on a free loopback port; returns once /ping answers 200."""
    port = free_port()
    cmd = [sys.executable, "-m", "local_model.serve", "--model", str(model_dir)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), *args]
    full_env = {**os.environ, **(env or {})}
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=full_env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{server.log_text()[-3000:]}")
        try:
            with urllib.request.urlopen(server.url + "/ping", timeout=1) as resp:
                if resp.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not answer /ping in {START_TIMEOUT} s:\n{server.log_text()}")


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
