"""A model server (`python -m local_model.serve`) started by a test on its own port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from scones.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0  # seconds for a server to answer /ping
STOP_TIMEOUT = 40.0  # graceful shutdown includes flushing capture to S3


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
    model_dir: Path,
    log: Path,
    args: list[str] = (),
    env: dict[str, str] | None = None,
    launcher: list[str] | None = None,
) -> ServerProcess:
    """`python -m local_model.serve` on a free loopback port; returns once /ping answers 200.

    ``launcher``: another command that runs the server's main with the arguments that follow.
    """
    port = free_port()
    cmd = launcher or [sys.executable, "-m", "local_model.serve"]
    cmd = [*cmd, "--model", str(model_dir)]
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
