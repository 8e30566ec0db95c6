"""`scones explore`: start the Streamlit explorer (streamlit_app/app.py) on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys

import typer
from rich.console import Console

from scones import PROJECT_ROOT, SconesError, config

OUT = Console(stderr=True)
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


def register(app: typer.Typer) -> None:
    """Add `scones explore`."""

    @app.command("explore")
    def explore_cmd(
        port: int = typer.Option(DEFAULT_PORT, "--port", help="Port on 127.0.0.1."),
    ) -> None:
        """Open the live explorer: executions, one execution's states, threshold, review queue."""
        if not APP.is_file():
            raise ExplorerError(f"{APP} is missing; is this a complete checkout?")
        try:
            import streamlit  # noqa: F401
        except ImportError as err:
            raise ExplorerError("streamlit is not installed; pip install streamlit") from err
        OUT.print(f"explorer on http://127.0.0.1:{port} (Ctrl+C stops it)")
        try:
            done = subprocess.run(command(port), env=environment(), cwd=PROJECT_ROOT)
        except KeyboardInterrupt:
            return
        if done.returncode not in (0, -2, 130):
            raise typer.Exit(done.returncode)
