"""The CLI switches to cloud mode by configuration alone, and says what it needs."""

import os
import subprocess
import sys

import pytest

import cloud
from scones import PROJECT_ROOT, config


def _scones(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "SCONES_TARGET": "cloud", **env}
    return subprocess.run(
        [sys.executable, "-m", "scones", *args],
        env=environ, capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT,
    )  # fmt: skip


def test_cloud_train_refuses_an_emulator_endpoint_with_a_clear_message():
    # tests point AWS_ENDPOINT_URL at the emulator: cloud mode must not train against it
    result = _scones("train", "--out", "/tmp/unused")
    assert result.returncode == 1
    assert "AWS_ENDPOINT_URL" in result.stderr and "Traceback" not in result.stderr


def test_documented_cloud_train_needs_no_out_option():
    """`SCONES_TARGET=cloud scones train`, as the README writes it, reaches the cloud code."""
    result = _scones("train")
    assert "Missing option" not in result.stderr
    assert result.returncode == 1 and "AWS_ENDPOINT_URL" in result.stderr


def test_cloud_deploy_without_a_trained_model_says_how_to_get_one(tmp_path):
    with pytest.raises(cloud.CloudError, match="run `scones train` with SCONES_TARGET=cloud"):
        cloud.deploy_endpoint(config.cloud_settings(), tmp_path)
