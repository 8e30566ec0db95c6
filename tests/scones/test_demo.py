"""`scones demo` end to end on the test stack: the 200 test images, the report, a fast re-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from scones import config
from scones.demo import DATASET, demo
from scones.report import clients, image_machine_arn, list_executions

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLASS_OF_LABEL = {0: "bicycle", 1: "motorcycle"}  # test.lst labels, see the data README


@pytest.fixture(autouse=True)
def state_dir():
    """Overrides tests/scones/conftest.py: the demo works in the test stack's own state dir."""
    return config.STATE_DIR


def truth_of(shared_data) -> dict[str, str]:
    """S3 key -> class of each test image, from the shared test.lst."""
    out = {}
    for line in (shared_data / "test.lst").read_text().splitlines():
        _, label, path = line.split("\t")
        out[f"datasets/{DATASET}/test/{path}"] = CLASS_OF_LABEL[int(float(label))]
    return out


def evaluate_accuracy(shared_data) -> float:
    """Top-1 accuracy of the served model on the test split, computed as `scones evaluate` does
    (the server's own ONNX session and preprocessing, no workflow in between)."""
    from local_model.serve import OnnxModel

    model = OnnxModel.load(config.MODEL_DIR)
    right = 0
    lines = (shared_data / "test.lst").read_text().splitlines()
    for line in lines:
        _, label, path = line.split("\t")
        x = model.prepare((shared_data / "test" / path).read_bytes(), config.MODEL_MAX_PIXELS)
        probs = model.run(x[None].astype(np.float32))[0]
        right += model.classes[int(np.argmax(probs))] == CLASS_OF_LABEL[int(float(label))]
    return right / len(lines)


def test_demo_streams_the_test_split_and_reports_every_image(
    emulator, model_server, shared_data, tmp_path
):
    result = demo(source=str(shared_data), out=tmp_path / "report")
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    s = data["summary"]
    truth = truth_of(shared_data)
    assert result.executions == 200 == len(truth)
    assert s["executions"] == 200 and s["images"] == 200 and s["judged"] == 200
    assert {row["s3_key"] for row in data["executions"]} == set(truth)
    for row in data["executions"]:
        assert row["truth"] == truth[row["s3_key"]]
    assert s["outcomes"]["running"] == 0 and s["outcomes"]["failed"] == 0
    assert sum(s["outcomes"][k] for k in ("succeeded", "review", "not_a_two_wheeler")) == 200
    assert s["accuracy"] == pytest.approx(evaluate_accuracy(shared_data), abs=1e-9)
    if result.reused == 0:  # a fresh run went through the endpoint: its capture is in S3
        assert s["capture_records"] >= 200
    page = (tmp_path / "report" / "index.html").read_text()
    assert all(row["name"] in page for row in data["executions"])

    # Again, through the CLI: nothing is redone or duplicated, the report is the same.
    done = subprocess.run(
        [sys.executable, "-m", "scones", "demo", "--source", str(shared_data), "--out",
         str(tmp_path / "again"), "--json"],
        capture_output=True, text=True, timeout=600, env=os.environ.copy(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    again = json.loads(done.stdout)
    assert again["name_prefix"] == result.name_prefix
    assert again["reused"] == 200
    assert {"emulator", "stage", "train", "model server", "deploy"} <= set(again["skipped"])
    assert again["summary"]["accuracy"] == s["accuracy"]
    c = clients()
    assert len(list_executions(c, image_machine_arn(c), result.name_prefix)) == 200


def test_demo_with_an_unreachable_source_names_the_source_option(emulator):
    done = subprocess.run(
        [sys.executable, "-m", "scones", "demo", "--source",
         "http://127.0.0.1:9/cifar-100-python.tar.gz"],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip
    assert done.returncode == 1
    assert "--source" in done.stderr
    assert "Traceback" not in done.stderr
