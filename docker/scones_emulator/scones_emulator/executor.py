"""LocalStack Lambda runtime executor that runs each execution environment as a host process.

Instead of a Docker container with LocalStack's Go init, every environment is one
``python -m awslambdaric <handler>`` process (AWS's own runtime interface client) polling a
Runtime API that we serve on 127.0.0.1. AWS behaviours kept: marshalling and error payloads by
awslambdaric, warm reuse of the process, Sandbox.Timedout with a killed and re-initialised
sandbox, Runtime.ExitError, START/END/REPORT log lines.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from localstack import config
from localstack.aws.api.lambda_ import PackageType
from localstack.services.lambda_.invocation.executor_endpoint import StatusErrorException
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

from scones_emulator.process import RuntimeProcess, exit_error
from scones_emulator.runtime_api import PendingInvoke
from scones_emulator.runtimes import (
    PythonRuntime,
    RuntimeUnavailable,
    ensure_runtime,
    find_interpreter,
    interpreter_for,
)

LOG = logging.getLogger(__name__)

# Where the runtime looks for commands, like AWS's /var/lang/bin:/usr/local/bin:/usr/bin/:/bin
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
TASK_ROOT = "/var/task"  # where AWS unpacks a function's code (LAMBDA_TASK_ROOT)
T = TypeVar("T", str, bytes)
# AWS gives init 10 s; LocalStack's own startup timer (LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT, 20 s)
# usually fires first and calls stop(). This is only our backstop.
INIT_TIMEOUT_S = max(10, config.LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT) + 5


class InitFailed(Exception):
    """The runtime reported an init error or died before asking for its first event."""

    def __init__(self, payload: bytes, output: str) -> None:
        super().__init__(payload.decode("utf-8", errors="replace"))
        self.payload = payload
        self.output = output


class SconesRuntimeExecutor(RuntimeExecutor):
    """One execution environment = one awslambdaric host process (re-spawned after a timeout)."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:  # noqa: A002
        super().__init__(id=id, function_version=function_version)
        self._runtime: PythonRuntime | None = None
        self._env: dict[str, str] = {}
        self._home: Path | None = None
        self._tmp: Path | None = None
        self._process: RuntimeProcess | None = None
        self._history: list[str] = []  # output of processes this environment already replaced
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    # ------------------------------ lifecycle ------------------------------
    def start(self, env_vars: dict[str, str]) -> None:
        """Spawn the runtime and wait until it polls for its first event (init done)."""
        config_ = self.function_version.config
        version, interpreter = interpreter_for(config_.runtime)
        try:
            self._runtime = ensure_runtime(version, interpreter)
        except RuntimeUnavailable as err:
            raise LambdaRuntimeException(str(err)) from err
        # default: LocalStack's TMPDIR. A private HOME keeps the host user's ~/.aws out of boto3.
        state = os.environ.get("SCONES_EMULATOR_STATE") or tempfile.gettempdir()
        self._home = Path(state) / "lambda-home" / self.id
        self._home.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(state) / "lambda-tmp" / self.id  # its /tmp, kept across re-spawns
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._env = self._process_env(env_vars)
        try:
            self._spawn()
        except InitFailed as failure:
            # the same path as LocalStack's status_error: the invoke answers with this payload
            raise StatusErrorException(
                "Environment startup failed", payload=self._as_task_root(failure.payload)
            ) from None

    def stop(self) -> None:
        self._stopped.set()
        if self._process is not None:
            self._retire(self._process)
        for private in (self._home, self._tmp):
            if private is not None:
                shutil.rmtree(private, ignore_errors=True)

    def _spawn(self, request_id: str | None = None) -> RuntimeProcess:
        if self._stopped.is_set():
            raise InitFailed(exit_error(None, request_id), "")
        code_dir = self._env["LAMBDA_TASK_ROOT"]
        argv = [
            str(self._runtime.python),
            "-m",
            "awslambdaric",
            self.function_version.config.handler,
        ]
        process = RuntimeProcess(argv, self._env, cwd=code_dir, label=self.id, tmp=str(self._tmp))
        self._process = process
        if self._stopped.is_set():  # stop() (LocalStack's startup timer) raced with the spawn
            process.kill()
        process.wait_settled(INIT_TIMEOUT_S)
        if process.api.ready.is_set():
            LOG.debug(
                "Lambda runtime %s for %s ready after %.1f ms",
                self.id,
                self.function_version.qualified_arn,
                process.init_duration_ms,
            )
            return process
        payload = process.api.init_error
        if payload is None:
            if process.alive:  # neither ready nor dead: init hangs past every timeout
                payload = json.dumps(
                    {"errorType": "Runtime.InitTimeout", "errorMessage": "init timed out"}
                ).encode()
            else:
                payload = exit_error(process.returncode, request_id)
        process.kill()
        output = process.take_output()
        self._retire(process)
        LOG.debug("Lambda runtime %s failed init: %s\n%s", self.id, payload, output)
        raise InitFailed(payload, output)

    def _retire(self, process: RuntimeProcess) -> None:
        """Kill a process for good, keeping its output for get_logs()."""
        if self._process is process:
            self._process = None
        if process.retired:
            return
        process.retired = True
        process.kill()
        self._history.append(process.history())

    def _process_env(self, env_vars: dict[str, str]) -> dict[str, str]:
        """LocalStack's variables (credentials, AWS_ENDPOINT_URL, user's) plus what AWS sets.

        Nothing comes from the emulator's own environment, so its venv stays out of the function.
        """
        code_dir = str(self.function_version.config.code.get_unzipped_code_location())
        env = {
            # unreserved in AWS: the function's own variables (in env_vars) may override these
            "PATH": f"{self._runtime.bin_dir}:{SYSTEM_PATH}",
            "LANG": "en_US.UTF-8",
            "HOME": str(self._home),
            "PYTHONPATH": code_dir,
        }
        env.update({key: str(value) for key, value in env_vars.items()})
        env.update(
            {
                # reserved in AWS
                "LAMBDA_TASK_ROOT": code_dir,
                "LAMBDA_RUNTIME_DIR": str(self._runtime.root),
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{self.function_version.config.runtime}",
            }
        )
        return env

    # ------------------------------ invoke ------------------------------
    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        """Send one event to the runtime and wait for its answer, its crash or the timeout."""
        request_id = payload["invoke-id"]
        with self._lock:
            process = self._process
            if process is None or not process.alive:
                # after a timeout or crash AWS re-initialises the sandbox before the next event
                try:
                    process = self._spawn(request_id)
                except InitFailed as failure:
                    return InvocationResult(
                        request_id,
                        self._as_task_root(failure.payload),
                        True,
                        self._as_task_root(self._failed_init_logs(request_id, failure)),
                    )
            return self._invoke(process, request_id, payload)

    def _invoke(
        self, process: RuntimeProcess, request_id: str, payload: dict[str, str]
    ) -> InvocationResult:
        config_ = self.function_version.config
        lines: list[str] = []
        init_ms = None
        if not process.init_reported:
            process.init_reported = True
            init_ms = process.init_duration_ms
            lines.append(
                f"INIT_START Runtime Version: {config_.runtime.replace('python', 'python:')}"
            )
        _add_output(lines, process.take_output())  # init output, or anything printed between events
        lines.append(f"START RequestId: {request_id} Version: {self.function_version.id.qualifier}")

        event = PendingInvoke(
            request_id=request_id,
            payload=(payload.get("payload") or "").encode(),
            function_arn=payload.get("invoked-function-arn") or self.function_version.qualified_arn,
            deadline_ms=int(time.time() * 1000 + config_.timeout * 1000),
            trace_id=payload.get("trace-id") or "",
        )
        started = time.perf_counter()
        process.api.submit(event)
        status = None
        try:
            body, is_error = event.result.result(timeout=config_.timeout)
        except FutureTimeout:
            status = "timeout"
            body, is_error = _timed_out(request_id, config_.timeout), True
        duration_ms = (time.perf_counter() - started) * 1000
        memory_mb = process.max_memory_mb()
        if status == "timeout":
            process.kill()  # Lambda never reuses a sandbox whose invocation timed out
        elif not process.alive:
            status = "error"  # the runtime died mid-invocation: body is Runtime.ExitError
        _add_output(lines, process.take_output())
        if status == "timeout":
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            lines.append(f"{stamp} {request_id} Task timed out after {config_.timeout:.2f} seconds")
        if status is not None:
            self._retire(process)
        lines.append(f"END RequestId: {request_id}")
        lines.append(self._report(request_id, duration_ms, memory_mb, init_ms, status))
        logs = self._as_task_root("\n".join(lines) + "\n")
        return InvocationResult(request_id, self._as_task_root(body), is_error, logs)

    def _as_task_root(self, text: T) -> T:
        """``text`` with the unzipped code's host path shown as /var/task, where AWS keeps a
        function's code (stack traces in error payloads and logs name /var/task/module.py)."""
        code_dir = self._env.get("LAMBDA_TASK_ROOT")
        if not code_dir or code_dir == TASK_ROOT:
            return text
        if isinstance(text, bytes):
            return text.replace(f"{code_dir}/".encode(), f"{TASK_ROOT}/".encode())
        return text.replace(f"{code_dir}/", f"{TASK_ROOT}/")

    def _report(
        self,
        request_id: str,
        duration_ms: float,
        memory_mb: int | None,
        init_ms: float | None,
        status: str | None,
    ) -> str:
        """AWS's REPORT line (tab separated)."""
        fields = [
            f"REPORT RequestId: {request_id}",
            f"Duration: {duration_ms:.2f} ms",
            f"Billed Duration: {math.ceil(duration_ms + (init_ms or 0))} ms",
            f"Memory Size: {self.function_version.config.memory_size} MB",
            f"Max Memory Used: {memory_mb or 0} MB",
        ]
        if init_ms is not None:
            fields.append(f"Init Duration: {init_ms:.2f} ms")
        if status is not None:
            fields.append(f"Status: {status}")
        return "\t".join(fields)

    def _failed_init_logs(self, request_id: str, failure: InitFailed) -> str:
        lines: list[str] = []
        _add_output(lines, failure.output)
        try:
            error_type = json.loads(failure.payload).get("errorType", "Runtime.Unknown")
        except ValueError:
            error_type = "Runtime.Unknown"
        lines.append(f"INIT_REPORT Phase: invoke\tStatus: error\tError Type: {error_type}")
        lines.append(f"START RequestId: {request_id} Version: {self.function_version.id.qualifier}")
        lines.append(f"END RequestId: {request_id}")
        lines.append(self._report(request_id, 0.0, None, None, "error"))
        return "\n".join(lines) + "\n"

    # ------------------------------ addresses and logs ------------------------------
    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        # the runtime is a host process, so LocalStack's gateway is simply loopback
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        port = config.GATEWAY_LISTEN[0].port
        return f"http://{self.get_endpoint_from_executor()}:{port}/_localstack_lambda/{self.id}"

    def get_logs(self) -> str:
        process = self._process
        current = process.history() if process is not None else ""
        return "".join(self._history) + current

    # ------------------------------ versions ------------------------------
    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        """Check the function can run here, build its Python runtime if needed, unzip its code."""
        config_ = function_version.config
        if config_.package_type != PackageType.Zip:
            raise LambdaRuntimeException(
                "container-image functions are not supported by the scones executor; "
                "deploy a zip package with a python3.X runtime"
            )
        if config_.layers:
            LOG.warning(
                "function %s has layers; the scones executor ignores them (bundle deps in the zip)",
                function_version.qualified_arn,
            )
        try:
            version, interpreter = interpreter_for(config_.runtime)
            ensure_runtime(version, interpreter)
        except RuntimeUnavailable as err:
            raise LambdaRuntimeException(str(err)) from err
        if config_.code:
            config_.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        """Nothing to undo: runtimes are shared and LocalStack deletes the unzipped code itself."""

    @classmethod
    def validate_environment(cls) -> bool:
        python = find_interpreter(f"{sys.version_info.major}.{sys.version_info.minor}")
        LOG.debug("scones Lambda executor: host processes; own Python %s", python or sys.executable)
        return True


def _add_output(lines: list[str], output: str) -> None:
    if output:
        lines.extend(output.rstrip("\n").split("\n"))


def _timed_out(request_id: str, timeout_s: float) -> bytes:
    """AWS's payload for an invocation that ran past the function's Timeout."""
    return json.dumps(
        {
            "errorType": "Sandbox.Timedout",
            "errorMessage": (
                f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"
            ),
        }
    ).encode()
