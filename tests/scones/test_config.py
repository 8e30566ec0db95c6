"""Settings are validated when read: a bad value is one line naming the variable, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from scones import PROJECT_ROOT, config


def _scones(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scones", *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("SCONES_TARGET", "clod", "local or cloud"),
        ("SCONES_EMULATOR_PORT", "99999", "an integer >= 1 and <= 65535"),
        ("SCONES_MODEL_PORT", "http", "an integer >= 1 and <= 65535"),
        ("SCONES_CONFIDENCE_THRESHOLD", "93", "a number >= 0 and <= 1"),
        ("SCONES_ENDPOINT_INSTANCE_COUNT", "0", "an integer >= 1"),
        ("SCONES_BATCH_MAX_CONCURRENCY", "-1", "an integer >= 0"),
        ("SCONES_CAPTURE_MODE", "Both", "Input or Output or InputAndOutput"),
        ("SCONES_CLOUD_TRAINER", "tensorflow", "builtin or pytorch"),
        ("SCONES_LOADING_BAYS", "bay-1", "a JSON object"),
        ("SCONES_CAPTURE_ENABLED", "maybe", "1 or 0"),
    ],
)
def test_a_bad_setting_is_one_line_naming_variable_and_allowed_values(
    monkeypatch, variable: str, value: str, allowed: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(config.ConfigError) as err:
        config.read()
    message = str(err.value)
    assert message.startswith(f"{variable}={value!r}: use ")
    assert allowed in message and "\n" not in message


def test_every_bad_setting_is_named_at_once(monkeypatch) -> None:
    monkeypatch.setenv("SCONES_TARGET", "AWS")
    monkeypatch.setenv("SCONES_MODEL_PORT", "0")
    message = str(pytest.raises(config.ConfigError, config.read).value)
    assert "SCONES_TARGET='AWS'" in message and "SCONES_MODEL_PORT='0'" in message


def test_target_is_case_insensitive_and_empty_means_the_default(monkeypatch) -> None:
    monkeypatch.setenv("SCONES_TARGET", " Local ")
    monkeypatch.setenv("SCONES_MODEL_PORT", "")
    settings = config.read()
    assert (settings.target, settings.model_port) == ("local", 8080)


def test_lists_are_comma_separated_and_paths_absolute(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SCONES_CLASS_NAMES", "bicycle, motorcycle,")
    monkeypatch.setenv("SCONES_STATE_DIR", str(tmp_path / "state" / ".." / "s"))
    settings = config.read()
    assert settings.class_names == ["bicycle", "motorcycle"]
    assert settings.state_dir == (tmp_path / "s").resolve()
    assert settings.capture_spool_dir == settings.state_dir / "capture-spool"  # follows STATE_DIR


def test_cloud_region_comes_from_the_aws_profile_unless_scones_region_is_set(
    monkeypatch, tmp_path
) -> None:
    """boto3's chain: AWS_PROFILE's region in the config file; never a silent us-east-1."""
    aws_config = tmp_path / "config"
    aws_config.write_text("[profile lab]\nregion = eu-west-3\n")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "SCONES_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_config))
    monkeypatch.setenv("AWS_PROFILE", "lab")
    monkeypatch.setenv("SCONES_TARGET", "cloud")
    assert config.read().region == "eu-west-3"
    monkeypatch.setenv("SCONES_REGION", "ap-south-1")
    assert config.read().region == "ap-south-1"
    monkeypatch.delenv("SCONES_REGION")
    monkeypatch.setenv("AWS_PROFILE", "nothing-here")
    aws_config.write_text("[profile nothing-here]\n")
    with pytest.raises(config.ConfigError, match="no AWS region.*SCONES_REGION"):
        config.read()


def test_cli_prints_a_bad_setting_in_one_line_and_exits_2_before_any_command() -> None:
    result = _scones("deploy", SCONES_TARGET="clod")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: SCONES_TARGET='clod': use local or cloud"
    assert result.stdout == ""


def test_cli_help_still_works_with_a_bad_setting() -> None:
    result = _scones("--help", SCONES_MODEL_PORT="eighty")
    assert result.returncode == 0 and "Usage" in result.stdout


def test_module_attributes_are_the_validated_settings() -> None:
    """`config.X` is the validated value (a fresh process: fixtures here patch some)."""
    check = (
        "from scones import config\n"
        "for name, value in config.read():\n"
        "    assert getattr(config, name.upper()) == value, name\n"
        "assert isinstance(config.MODEL_PORT, int) and isinstance(config.CLASS_NAMES, list)\n"
    )
    env = {**os.environ, "SCONES_MODEL_PORT": "8123", "SCONES_CLASS_NAMES": "a,b"}
    done = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
