"""The model server reads its own SCONES_* variables: the model container runs it without scones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from local_model import LocalModelError, env
from local_model.capture import CaptureConfig
from local_model.serve import DEFAULT_MODEL_DIR, ServerSettings, build_parser, settings_from_args
from scones import PROJECT_ROOT, config


class _Defaults:
    """scones.config's declared defaults, whatever this environment sets."""

    def __getattr__(self, name: str):
        return config.Settings.model_fields[name].default


def test_unset_variables_give_the_same_defaults_as_scones_config():
    """An empty environment: the server's defaults are scones.config's (one set of values)."""
    defaults = _Defaults()
    server = ServerSettings.from_env({})
    assert server.model_dir == defaults.model_dir == DEFAULT_MODEL_DIR
    assert server.endpoint_names == (defaults.endpoint_name,)
    assert server.variant == defaults.model_variant
    assert server.max_batch == defaults.model_max_batch
    assert server.max_wait_ms == defaults.model_max_wait_ms
    assert server.intra_op_threads == defaults.model_intra_op_threads
    assert server.decode_threads == defaults.model_decode_threads
    assert server.max_payload == defaults.model_max_payload
    assert server.max_pixels == defaults.model_max_pixels
    assert server.account_id == defaults.account_id
    assert server.capture is None and defaults.capture_enabled is False
    capture = CaptureConfig.from_env({})
    assert capture.destination == f"s3://{defaults.bucket}/data_capture"
    assert capture.sampling_percentage == defaults.capture_sampling
    assert capture.mode == defaults.capture_mode
    assert capture.flush_bytes == defaults.capture_flush_bytes
    assert capture.flush_seconds == defaults.capture_flush_seconds
    assert capture.spool_dir == defaults.state_dir / "capture-spool"
    assert defaults.state_dir == PROJECT_ROOT / ".scones"
    assert env.emulator_url({}) == f"http://{defaults.emulator_host}:{defaults.emulator_port}"


def test_variables_set_reach_the_settings(tmp_path: Path):
    environ = {
        "SCONES_MODEL_DIR": str(tmp_path),
        "SCONES_ENDPOINT_NAME": "mine",
        "SCONES_ENDPOINT_ALIASES": "theirs, mine, other",
        "SCONES_MODEL_MAX_BATCH": "8",
        "SCONES_CAPTURE_ENABLED": "yes",
        "SCONES_BUCKET": "their-bucket",
        "SCONES_CAPTURE_SAMPLING": "25",
        "SCONES_STATE_DIR": str(tmp_path / "state"),
        "SCONES_REGION": "eu-west-1",
    }
    server = ServerSettings.from_env(environ)
    assert server.model_dir == tmp_path.resolve()
    assert server.endpoint_names == ("mine", "theirs", "other")
    assert server.max_batch == 8 and server.region == "eu-west-1"
    assert server.capture.destination == "s3://their-bucket/data_capture"
    assert server.capture.sampling_percentage == 25
    assert server.capture.spool_dir == tmp_path / "state" / "capture-spool"


def test_command_line_options_win_over_variables():
    args = build_parser().parse_args(["--max-batch", "4", "--no-capture", "--alias", "x"])
    server = settings_from_args(
        args, {"SCONES_MODEL_MAX_BATCH": "8", "SCONES_CAPTURE_ENABLED": "1"}
    )
    assert server.max_batch == 4 and server.capture is None
    assert server.endpoint_names == ("scones-classifier", "x")


@pytest.mark.parametrize(
    ("name", "value"),
    [("SCONES_MODEL_MAX_BATCH", "many"), ("SCONES_CAPTURE_ENABLED", "maybe"),
     ("SCONES_CAPTURE_SAMPLING", "half")],
)  # fmt: skip
def test_a_value_that_does_not_parse_names_its_variable(name: str, value: str):
    with pytest.raises(LocalModelError, match=f"{name}='{value}'"):
        ServerSettings.from_env({"SCONES_CAPTURE_ENABLED": "1", name: value})


def test_serve_entry_point_reports_a_bad_variable_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "local_model.serve", "--port", "1"],
        env={"PATH": "/usr/bin:/bin", "SCONES_MODEL_MAX_BATCH": "many"},
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert result.returncode == 1
    assert "SCONES_MODEL_MAX_BATCH='many'" in result.stderr and "Traceback" not in result.stderr
