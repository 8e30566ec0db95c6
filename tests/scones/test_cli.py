"""The `scones` command itself: --version and the exit codes (a real CLI process each time)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import pytest

from scones import PROJECT_ROOT
from scones.stack import free_port


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
    port = str(free_port())  # nothing listens there
    env = {"SCONES_STATE_DIR": str(tmp_path), "SCONES_EMULATOR_PORT": port}
    env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"  # the session's emulator is not this one
    done = _scones("run", "s3://bucket/x.png", **env)
    assert done.returncode == 3, done.stderr
    assert "scones up" in done.stderr and "Traceback" not in done.stderr


def test_status_of_a_stack_that_is_down_exits_3(tmp_path):
    env = {"SCONES_STATE_DIR": str(tmp_path), "SCONES_EMULATOR_PORT": str(free_port())}
    done = _scones("status", **env, SCONES_MODEL_PORT=str(free_port()))
    assert done.returncode == 3
    assert "down: emulator, model" in done.stderr


COURSE = "tests/byo/course_project"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["load", "--burst", "5", "--rate", "1", "--duration", "1"], "not both"),
        (["report", "--since", "banana"], "--since 'banana'"),
        (["stage", "--md5", "xyz"], "--md5 must be 32 hex digits"),
        (["stage", "--classes", "bogus"], "bogus"),
        (["train", "--hp", "foo"], "--hp 'foo': expected key=value"),
        (["deploy", "--target", "bogus"], "--target 'bogus'"),
        (["import", f"{COURSE}/statemachine.json", f"{COURSE}/lambdas", "--env", "FOO"],
         "--env expects NAME=VALUE"),
        (["import", f"{COURSE}/statemachine.json", "/nonexistent"], "no such file or folder"),
        (["import", "/nonexistent.json", f"{COURSE}/lambdas"], "cannot read the definition"),
    ],
)  # fmt: skip
def test_bad_options_are_usage_errors_that_exit_2(tmp_path, args, says):
    """Named errors about the options given exit 2 (not 1, which is "the workflow said no")."""
    env = {"SCONES_STATE_DIR": str(tmp_path), "SCONES_EMULATOR_PORT": str(free_port()),
           "SCONES_MODEL_PORT": str(free_port())}  # fmt: skip
    done = _scones(*args, **env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and says in done.stderr
    assert "Traceback" not in done.stderr


def test_bench_workflow_with_a_bad_path_exits_2(tmp_path):
    done = _scones("bench", "workflow", "--path", "x", SCONES_STATE_DIR=str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert "--path must be one of" in done.stderr
