"""The `scones` command itself: --version and the exit codes (a real CLI process each time)."""

from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import sys

from scones import PROJECT_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scones(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scones", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
    )


def test_version_comes_from_the_package_metadata():
    done = _scones("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"scones {importlib.metadata.version('scones')}"


def test_help_lists_the_exit_codes():
    done = _scones("--help")
    assert done.returncode == 0, done.stderr
    assert "Exit codes: 0 success" in " ".join(done.stdout.split())


def test_a_bad_setting_exits_2():
    done = _scones("run", "s3://bucket/x.png", SCONES_TARGET="bogus")
    assert done.returncode == 2
    assert "SCONES_TARGET" in done.stderr and "Traceback" not in done.stderr


def test_no_staged_dataset_is_a_usage_error_that_says_what_to_do(tmp_path):
    done = _scones("evaluate", SCONES_STATE_DIR=str(tmp_path))
    assert done.returncode == 2
    assert "run `scones stage`" in done.stderr and "--data" in done.stderr
    assert str(tmp_path / "datasets" / "bicycle-motorcycle") in done.stderr


def test_an_unreachable_emulator_exits_3(tmp_path):
    port = str(_free_port())  # nothing listens there
    env = {"SCONES_STATE_DIR": str(tmp_path), "SCONES_EMULATOR_PORT": port}
    env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"  # the session's emulator is not this one
    done = _scones("run", "s3://bucket/x.png", **env)
    assert done.returncode == 3, done.stderr
    assert "scones up" in done.stderr and "Traceback" not in done.stderr


def test_status_of_a_stack_that_is_down_exits_3(tmp_path):
    env = {"SCONES_STATE_DIR": str(tmp_path), "SCONES_EMULATOR_PORT": str(_free_port())}
    done = _scones("status", **env, SCONES_MODEL_PORT=str(_free_port()))
    assert done.returncode == 3
    assert "down: emulator, model" in done.stderr
