"""One Lambda runtime process: ``python -m awslambdaric <handler>`` with its Runtime API and output.

The process's stdout and stderr share one pipe that a reader thread drains, so a chatty handler
never blocks on a full pipe. To cut the output at an exact point (the end of an invocation) the
invoking thread drains the pipe itself: every byte the runtime wrote before its HTTP answer is
then either already taken by the reader or still in the pipe. Both read only under one lock and
without blocking, so the output keeps its order and the invoke waits for no other thread (an
earlier marker written into the pipe cost two thread wake-ups per cut, four per invoke).
"""

from __future__ import annotations

import json
import logging
import os
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from scones_emulator.runtime_api import RuntimeApiServer

LOG = logging.getLogger(__name__)

READ_CHUNK = 65536
# One drain takes at most this much: a handler's thread that keeps printing after the answer
# must not keep the invoke reading (the reader thread takes the rest).
DRAIN_CHUNKS = 16
HISTORY_LIMIT = 1 << 20  # bytes of whole-process output kept for get_logs(): the newest 1 MiB
KILL_WAIT_S = 5.0

# Each AWS execution environment has its own /tmp; the course's serializer writes
# /tmp/image.png, so environments sharing the host's /tmp would read each other's images.
# A private mount namespace with the environment's directory bound on /tmp gives that on Linux
# (root, or unprivileged user namespaces); `unshare` execs in place, so the pid stays the
# runtime's. Elsewhere TMPDIR points at the directory (tempfile users only) and we warn once.
_BIND_TMP = '{mount} --bind "$0" /tmp && exec "$@"'  # $0: the directory, $@: the runtime
_private_tmp_prefix: list[str] | None = None
_private_tmp_lock = threading.Lock()


def private_tmp_prefix() -> list[str] | None:
    """The argv prefix that runs a command with its own /tmp, or None where that is impossible."""
    global _private_tmp_prefix
    with _private_tmp_lock:
        if _private_tmp_prefix is None:
            _private_tmp_prefix = _probe_private_tmp() or []
            if not _private_tmp_prefix:
                LOG.warning(
                    "no mount namespaces here: Lambda environments share the host's /tmp "
                    "(TMPDIR is private; code writing literal /tmp paths is not)"
                )
        return _private_tmp_prefix or None


def _under_tmp(path: str) -> bool:
    # both spellings: a venv's bin/python under /tmp resolves to an interpreter elsewhere
    spellings = (os.path.abspath(path), os.path.realpath(path))
    return any(Path(p).is_relative_to("/tmp") for p in spellings)


def _probe_private_tmp() -> list[str] | None:
    # absolute paths: a function's own PATH variable must not break its start
    unshare, sh, mount = (shutil.which(name) for name in ("unshare", "sh", "mount"))
    if not (unshare and sh and mount):
        return None
    user = [] if os.geteuid() == 0 else ["--map-current-user"]
    script = _BIND_TMP.format(mount=shlex.quote(mount))
    prefix = [unshare, "--mount", "--propagation", "private", *user, sh, "-c", script]
    probe = tempfile.mkdtemp(prefix="scones-tmp-probe-")
    try:
        marker = Path(probe) / "marker"
        marker.touch()
        done = subprocess.run(
            [*prefix, probe, sh, "-c", "test -e /tmp/marker"], capture_output=True, timeout=10
        )
        return prefix if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None
    finally:
        shutil.rmtree(probe, ignore_errors=True)


# Go's names for signals, as AWS's runtime manager prints them ("signal: killed")
SIGNAL_NAMES = {
    signal.SIGKILL: "killed",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGTERM: "terminated",
}


def exit_error(returncode: int | None, request_id: str | None = None) -> bytes:
    """AWS's payload when the runtime process dies: Runtime.ExitError."""
    if returncode is not None and returncode < 0:
        reason = f"signal: {SIGNAL_NAMES.get(-returncode, -returncode)}"
    else:
        reason = f"exit status {returncode}"
    prefix = f"RequestId: {request_id} " if request_id else ""
    return json.dumps(
        {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"{prefix}Error: Runtime exited with error: {reason}",
        }
    ).encode()


class RuntimeProcess:
    """A spawned awslambdaric process, its private Runtime API server and its captured output."""

    def __init__(
        self, argv: list[str], env: dict[str, str], cwd: str, label: str, tmp: str | None = None
    ) -> None:
        """``tmp``: the environment's own directory, seen by the runtime as /tmp."""
        self.label = label
        self.api = RuntimeApiServer()
        env = {**env, "AWS_LAMBDA_RUNTIME_API": self.api.address}
        if tmp is not None:
            prefix = private_tmp_prefix()
            # what the runtime must still see once /tmp is replaced (a state dir under /tmp)
            needed = [argv[0], cwd, env.get("HOME"), env.get("LAMBDA_TASK_ROOT")]
            if prefix and not any(_under_tmp(path) for path in needed if path):
                argv = [*prefix, tmp, *argv]
            else:
                LOG.debug("Lambda runtime %s: private TMPDIR only, /tmp is the host's", label)
                env["TMPDIR"] = tmp
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)  # read only what is there: see _drain
        self._read_fd = read_fd  # -1 once the reader thread closed it (under _lock)
        self._output = bytearray()  # not yet handed out by take_output()
        self._history = bytearray()
        self._lock = threading.Lock()
        self.exited = threading.Event()
        self.returncode: int | None = None
        self.init_duration_ms: float | None = None
        self.init_reported = False
        self.retired = False  # set by the executor once the process is replaced for good
        self.spawned_at = time.perf_counter()
        try:
            # a new session, so a kill takes any child processes the handler started with it
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
                close_fds=True,
            )
        except OSError:
            os.close(read_fd)
            self.api.close()
            raise
        finally:
            os.close(write_fd)  # the process has its copy: the pipe ends when the process does
        self.pid = self.proc.pid
        threading.Thread(
            target=self._read, name=f"scones-lambda-out-{self.pid}", daemon=True
        ).start()
        threading.Thread(
            target=self._watch, name=f"scones-lambda-wait-{self.pid}", daemon=True
        ).start()

    # ------------------------------ lifecycle ------------------------------
    @property
    def alive(self) -> bool:
        return not self.exited.is_set()

    def wait_settled(self, timeout: float) -> None:
        """Block until the runtime asked for its first event, reported an init error, or died."""
        self.api.settled.wait(timeout)
        if self.api.ready.is_set() and self.init_duration_ms is None:
            self.init_duration_ms = (time.perf_counter() - self.spawned_at) * 1000

    def kill(self) -> None:
        """SIGKILL the process group (as Lambda does on timeout) and close its Runtime API server;
        the output reader stops at the pipe's end."""
        if self.alive:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.exited.wait(KILL_WAIT_S)
        self.api.close()

    def _watch(self) -> None:
        self.returncode = self.proc.wait()
        self.exited.set()
        LOG.debug(
            "Lambda runtime %s (pid %s) exited with %s", self.label, self.pid, self.returncode
        )
        current = self.api._current
        if current is not None:
            current.resolve(exit_error(self.returncode, current.request_id), is_error=True)
        self.api.settled.set()

    def max_memory_mb(self) -> int | None:
        """Peak resident set size (VmHWM) of the runtime, for REPORT's Max Memory Used."""
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return max(1, round(int(line.split()[1]) / 1024))
        except (OSError, ValueError):
            return None
        return None

    # ------------------------------ output ------------------------------
    def _read(self) -> None:
        """Wait for output without the lock, then take it under the lock, until the pipe ends."""
        poller = select.poll()  # not select(): a busy emulator has descriptors past 1024
        poller.register(self._read_fd, select.POLLIN)
        while True:
            poller.poll()
            with self._lock:
                if not self._drain():
                    os.close(self._read_fd)  # here only: this thread may be polling it
                    self._read_fd = -1
                    return

    def _drain(self) -> bool:
        """Move what the pipe holds into the output (``_lock`` held); False once it ended."""
        if self._read_fd < 0:
            return False
        for _ in range(DRAIN_CHUNKS):
            try:
                chunk = os.read(self._read_fd, READ_CHUNK)
            except BlockingIOError:
                return True  # all there was
            except OSError:
                chunk = b""
            if not chunk:  # every writer closed it: the process and its children are gone
                return False
            self._output += chunk
        return True

    def take_output(self) -> str:
        """Everything the process wrote since the last call, exactly up to now."""
        with self._lock:
            self._drain()
            data = bytes(self._output)
            self._output.clear()
            self._history += data
            if len(self._history) > HISTORY_LIMIT:
                del self._history[: len(self._history) - HISTORY_LIMIT]
        return data.decode("utf-8", errors="replace")

    def history(self) -> str:
        with self._lock:
            return bytes(self._history + self._output).decode("utf-8", errors="replace")
