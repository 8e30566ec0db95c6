"""`scones explore`: start the Streamlit explorer (streamlit_app/app.py) on 127.0.0.1."""

from __future__ import annotations

import os
import sys

from scones import PROJECT_ROOT, SconesError, config

APP = PROJECT_ROOT / "streamlit_app" / "app.py"
DEFAULT_PORT = 8501  # Streamlit's own default


class ExplorerError(SconesError):
    """The explorer cannot start (Streamlit missing, app file missing)."""


def command(port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> list[str]:
    """The `streamlit run` command line: loopback only, headless, no usage statistics."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",  # no browser opened, no e-mail prompt
        "--browser.gatherUsageStats",
        "false",  # no network calls home
        "--server.fileWatcherType",
        "none",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "viewer",  # no "Deploy" button: this app is not for the cloud
    ]


def environment() -> dict[str, str]:
    """The app's environment: the same target settings as the CLI (boto3 finds the emulator)."""
    config.apply_target_env()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    return env
