"""The local stack as host processes: install the emulator, `scones up/down/status`."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import boto3

from scones import PROJECT_ROOT, QUIET, SconesError, Show, config, imported

LOG = logging.getLogger(__name__)

PLUGIN_DIR = PROJECT_ROOT / "docker" / "scones_emulator"
# LocalStack core 2026.3.0 needs Python >= 3.12; 4.9.2 is the last release for 3.11.
LOCALSTACK_MODERN = "localstack-core[runtime]==2026.3.0"
LOCALSTACK_LEGACY = "localstack-core[runtime]==4.9.2"
# Each release's dependencies pinned to what we test: newer cbor2, pyOpenSSL, psutil break them.
MODERN_CONSTRAINTS = PROJECT_ROOT / "docker" / "constraints-localstack-2026.3.0.txt"
LEGACY_CONSTRAINTS = PROJECT_ROOT / "docker" / "constraints-localstack-4.9.2.txt"
# service-identity: Twisted (LocalStack's gateway server) imports it; localstack-core leaves it out.
EMULATOR_EXTRAS = ["awslambdaric==4.2.2", "jsonata-python==0.7.1", "service-identity==24.2.0"]
STOP_GRACE_SECONDS = 10.0  # LocalStack sometimes hangs on SIGTERM; then SIGKILL


class StackError(SconesError):
    """The local stack cannot be installed, started or stopped."""


class PortTaken(StackError):
    """A component's port is already used by a process that is not ours."""


# ------------------------------ Emulator install ------------------------------


def find_emulator_python() -> tuple[Path, bool]:
    """LocalStack's interpreter and whether it is modern (>= 3.12): config, PATH, then pyenv."""
    candidates: list[str] = []
    if config.EMULATOR_PYTHON:
        candidates.append(config.EMULATOR_PYTHON)
    candidates += ["python3.13", "python3.12"]
    for minor in ("3.13", "3.12"):
        candidates += sorted(
            str(p) for p in _pyenv_root().glob(f"versions/{minor}.*/bin/python{minor}")
        )
    for candidate in candidates:
        exe = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if not exe:
            continue
        version = _python_version(exe)
        if version and version >= (3, 12):
            return Path(exe), True
        if version and candidate == config.EMULATOR_PYTHON:
            return Path(exe), False
    LOG.warning("no Python >= 3.12 found (SCONES_EMULATOR_PYTHON); using LocalStack 4.9.2 on 3.11")
    return Path(sys.executable), False


def _pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def _python_says(exe: str, code: str) -> str | None:
    """What the interpreter ``exe`` prints for ``code``; None if it cannot run it."""
    try:
        return subprocess.run(
            [exe, "-c", code], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def _python_version(exe: str) -> tuple[int, int] | None:
    out = _python_says(exe, "import sys; print(sys.version_info[0], sys.version_info[1])")
    try:
        major, minor = (out or "").split()[:2]
        return int(major), int(minor)
    except ValueError:
        return None


def unoptimized_pyenv_build(python: Path) -> bool:
    """Whether ``python`` is a pyenv build without profile-guided and link-time optimisation
    (pyenv's default: it configures CPython without ``--enable-optimizations``). The emulator
    is one Python process and the workflow's limit: on this kind of machine it took ~13 % more
    CPU per workflow execution on such a build of 3.13 than on an optimised one (README,
    "Figures"). Only pyenv's builds are judged: distributions, python.org and the official
    Docker images build theirs optimised, in ways CONFIG_ARGS may not show."""
    pyenv_root = _pyenv_root().resolve()
    if not (
        python.absolute().is_relative_to(pyenv_root) or python.resolve().is_relative_to(pyenv_root)
    ):
        return False
    args = _python_says(
        str(python), "import sysconfig; print(sysconfig.get_config_var('CONFIG_ARGS'))"
    )
    return args is not None and "--enable-optimizations" not in args


def _install_fingerprint(python: Path, modern: bool) -> str:
    """Changes whenever what we would install changes, so `setup` refreshes only then."""
    digest = hashlib.sha256()
    digest.update(
        f"{python}|{modern}|{LOCALSTACK_MODERN}|{LOCALSTACK_LEGACY}|{EMULATOR_EXTRAS}".encode()
    )
    for path in sorted(PLUGIN_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path):
            digest.update(path.relative_to(PLUGIN_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    constraints = MODERN_CONSTRAINTS if modern else LEGACY_CONSTRAINTS
    if constraints.exists():
        digest.update(constraints.read_bytes())
    return digest.hexdigest()


def setup_emulator(force: bool = False, show: Show = QUIET) -> Path:
    """Create or refresh the emulator's venv: LocalStack core, awslambdaric, jsonata, our plugin."""
    venv = config.EMULATOR_VENV
    python, modern = find_emulator_python()
    marker = venv / "scones-setup.json"
    fingerprint = _install_fingerprint(python, modern)
    if not force and marker.exists():
        if json.loads(marker.read_text()).get("fingerprint") == fingerprint:
            return venv
    with show.busy(f"installing the emulator into {venv} (Python {python}) ..."):
        venv_python = venv / "bin" / "python"
        made_by = _python_version(str(venv_python)) if venv_python.exists() else None
        if made_by and made_by != _python_version(str(python)):
            shutil.rmtree(venv)  # made by another Python: pip cannot switch it over
        if not venv_python.exists():
            _run([str(python), "-m", "venv", str(venv)])
        pip = [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
        ]
        constraints = MODERN_CONSTRAINTS if modern else LEGACY_CONSTRAINTS
        packages = [LOCALSTACK_MODERN if modern else LOCALSTACK_LEGACY, *EMULATOR_EXTRAS]
        _run(pip + packages + ["-c", str(constraints)])
        _run(pip + ["--no-deps", "-e", str(PLUGIN_DIR)])
        runtimes = [str(venv / "bin" / "python"), "-m", "scones_emulator.runtimes", "install"]
        _run(runtimes)  # awslambdaric for every Python the machine has, for function runtimes
    marker.write_text(json.dumps({"fingerprint": fingerprint, "python": str(python)}))
    if unoptimized_pyenv_build(python):
        show.say(
            f"note: the emulator runs on {python}, a pyenv build without PGO/LTO (~13 % more "
            "CPU per workflow execution than an optimised build); `PYTHON_CONFIGURE_OPTS="
            "'--enable-optimizations --with-lto' pyenv install 3.13` builds an optimised one, "
            "or set SCONES_EMULATOR_PYTHON to your system's python3.12+"
        )
    return venv


def _run(cmd: list[str]) -> None:
    LOG.debug("running %s", cmd)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise StackError(f"`{' '.join(cmd[:6])} ...` failed:\n{tail}")


# ------------------------------ Components ------------------------------


@dataclass
class Component:
    """One host process of the stack: how to start it and how to tell it is healthy."""

    name: str
    host: str
    port: int
    health_path: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return config.STATE_DIR / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return config.STATE_DIR / "logs" / f"{self.name}.log"


def components() -> list[Component]:
    """The stack, in start order."""
    return [
        Component("emulator", config.EMULATOR_HOST, config.EMULATOR_PORT, "/_localstack/health"),
        Component("model", config.MODEL_HOST, config.MODEL_PORT, "/ping"),
    ]


def emulator_env() -> dict[str, str]:
    """LocalStack core on the host: loopback only, state and cache under our state dir."""
    root = config.STATE_DIR / "emulator"
    tmp = root / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # per-run scratch (S3 object files); the cache is kept
    for sub in ("fs", "tmp", "lambda"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON", "VIRTUAL_ENV"))
    }
    services = dict.fromkeys([*config.EMULATOR_SERVICES.split(","), *imported.services()])
    env.update(
        OVERRIDE_IN_DOCKER="0",  # this box has /.dockerenv, but LocalStack runs on the host
        GATEWAY_SERVER="twisted",  # LocalStack's default; our plugin binds it to the host below
        GATEWAY_LISTEN=f"{config.EMULATOR_HOST}:{config.EMULATOR_PORT}",
        DNS_ADDRESS="0",
        DISABLE_EVENTS="1",
        SERVICES=",".join(services),  # started eagerly
        # Any other service loads on its first request (`scones import` enables what a project
        # uses without a restart that would lose the emulator's state)
        STRICT_SERVICE_LOADING="0",
        # DynamoDB answered by moto: LocalStack's own needs Java and a jar it downloads
        PROVIDER_OVERRIDE_DYNAMODB="scones",
        FILESYSTEM_ROOT=str(root / "fs"),  # holds the cache: keeps warm start fast
        TMPDIR=str(tmp),  # not the system temp dir every instance shares
        LAMBDA_RUNTIME_EXECUTOR="scones",
        SCONES_EMULATOR_STATE=str(root / "lambda"),
        # Service state saved here and loaded at start (the plugin's persistence.py); set to
        # empty, none (`scones bench workflow --no-persistence` measures its cost that way)
        SCONES_EMULATOR_PERSIST=os.environ.get("SCONES_EMULATOR_PERSIST", str(persist_dir())),
        EAGER_SERVICE_LOADING="1",  # pay service start-up in `scones up`, not on the first call
        # Internal calls (Step Functions -> Lambda, SNS, SQS) skip HTTP: ~35 % less CPU each run
        IN_MEMORY_CLIENT="1",
        SKIP_SSL_CERT_DOWNLOAD="1",
    )
    return env


def persist_dir() -> Path:
    """Where the emulator keeps S3 objects, queues, functions, executions across restarts."""
    return config.STATE_DIR / "emulator" / "state"


def reset() -> Path:
    """Delete the emulator's saved state; the stack must be down (it would save it again)."""
    emulator = next(c for c in components() if c.name == "emulator")
    if _read_pid(emulator):
        raise StackError("the emulator is running; `scones down` first, then `scones reset`")
    shutil.rmtree(persist_dir(), ignore_errors=True)
    return persist_dir()


def _command(component: Component) -> tuple[list[str], dict[str, str]]:
    if component.name == "emulator":
        python = config.EMULATOR_VENV / "bin" / "python"
        return [str(python), "-m", "localstack.runtime.main"], emulator_env()
    env = dict(os.environ)
    env.setdefault("AWS_ENDPOINT_URL", config.emulator_url())
    aliases = dict.fromkeys([*config.ENDPOINT_ALIASES, *imported.endpoint_names()])
    env["SCONES_ENDPOINT_ALIASES"] = ",".join(aliases)
    # The stack's endpoint captures, as the course's did; plain `scones serve` does not.
    env.setdefault("SCONES_CAPTURE_ENABLED", "1")
    cmd = [sys.executable, "-m", "local_model.serve", "--model", str(config.MODEL_DIR)]
    return cmd + ["--host", component.host, "--port", str(component.port)], env


def _read_pid(component: Component) -> int | None:
    """The component's pid if that process is alive and is still the one we started."""
    try:
        pid = int(component.pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError, IndexError):
        return None
    marker = "localstack.runtime.main" if component.name == "emulator" else "local_model.serve"
    return pid if marker in cmdline else None


def is_healthy(component: Component, timeout: float = 2.0) -> bool:
    """One health probe: LocalStack's /_localstack/health with every service ready, or /ping."""
    try:
        with urllib.request.urlopen(component.url + component.health_path, timeout=timeout) as r:
            body = r.read()
            if r.status != 200:
                return False
    except (OSError, urllib.error.URLError):
        return False
    if component.name != "emulator":
        return True
    services = json.loads(body).get("services", {})
    wanted = config.EMULATOR_SERVICES.split(",")
    return all(services.get(s) in ("available", "running") for s in wanted)


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def start(component: Component, timeout: float, show: Show = QUIET) -> float:
    """Start one component unless it already runs; wait until healthy. Returns seconds waited."""
    began = time.monotonic()
    if _read_pid(component) and is_healthy(component):
        return 0.0
    if _read_pid(component):
        stop(component)  # ours but unhealthy: restart it
    if _port_in_use(component.host, component.port):
        raise PortTaken(
            f"{component.name}: port {component.port} on {component.host} is taken by another "
            f"process; stop it or set SCONES_{component.name.upper()}_PORT"
        )
    if component.name == "emulator":
        setup_emulator(show=show)
    elif not (config.MODEL_DIR / "model.onnx").exists():
        raise StackError(
            f"no model at {config.MODEL_DIR}; run `scones train` or set SCONES_MODEL_DIR"
        )
    cmd, env = _command(component)
    component.log_file.parent.mkdir(parents=True, exist_ok=True)
    component.pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(component.log_file, "ab") as log:
        # Own session: `down` signals the whole group, Lambda runtimes included.
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
    component.pid_file.write_text(f"{proc.pid}\n")
    # From here: a first start's venv install above has its own bounds and must not eat the
    # health wait (it did, and the first `scones up` on a fresh machine gave up at once).
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{component.name} exited ({proc.returncode}); {_log_tail(component)}")
        if is_healthy(component):
            return time.monotonic() - began
        time.sleep(0.25)
    # By our own handle, not the pid file: right after exec, /proc/<pid>/cmdline can still be
    # empty, stop() took the process for a stranger's and left it running, port and all.
    component.pid_file.unlink(missing_ok=True)
    _terminate(component.name, proc.pid, leader=True)
    with contextlib.suppress(subprocess.TimeoutExpired):  # reap it; bounded if SIGKILL failed
        proc.wait(timeout=STOP_GRACE_SECONDS)
    raise StackError(f"{component.name} not healthy after {timeout:.0f} s; {_log_tail(component)}")


def _log_tail(component: Component, lines: int = 8) -> str:
    try:
        tail = component.log_file.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return "no log"
    return f"log {component.log_file}:\n" + "\n".join(tail)


def stop(component: Component) -> bool:
    """SIGTERM the component's process group, SIGKILL after the grace period. True if it ran."""
    pid = _read_pid(component)
    component.pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    # We start each component as a group leader; one started by hand may not be: signal just it.
    return _terminate(component.name, pid, leader=_is_group_leader(pid))


def _terminate(name: str, pid: int, leader: bool) -> bool:
    """SIGTERM ``pid`` (its whole group if it leads one), SIGKILL after the grace period."""
    kill = os.killpg if leader else os.kill
    alive = _group_alive if leader else _process_alive
    try:
        kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    if alive(pid):
        LOG.warning("%s ignored SIGTERM for %.0f s; killing", name, STOP_GRACE_SECONDS)
        try:
            kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for _ in range(50):
            if not alive(pid):
                break
            time.sleep(0.1)
    return True


def _is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def stat_fields(stat: Path) -> list[str] | None:
    """A /proc ``stat`` file's fields after the command name (state, ppid, pgrp ...); None if
    the process or thread is gone."""
    try:
        return stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _process_alive(pid: int) -> bool:
    """Whether a thread of ``pid`` still runs. A process whose main thread has ended shows as a
    zombie while its other threads finish: one still in a system call (an fsync under heavy
    I/O) keeps every socket open, the listening one too. Counted as gone, the next start found
    its port taken (the likeliest cause of that failure in CI, after heavy disk writes)."""
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        fields = stat_fields(stat)
        if fields and fields[0] not in ("Z", "X"):
            return True
    return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader still counts for killpg; look for a live member instead.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = stat_fields(stat)
        if fields and int(fields[2]) == pgid and _process_alive(int(stat.parent.name)):
            return True
    return False


# ------------------------------ Commands ------------------------------


@dataclass
class ComponentStatus:
    name: str
    pid: int | None
    url: str
    healthy: bool
    log: str


def status() -> list[ComponentStatus]:
    """Each component: pid (if ours and alive), url, healthy."""
    return [
        ComponentStatus(c.name, _read_pid(c), c.url, is_healthy(c), str(c.log_file))
        for c in components()
    ]


def up(only: list[str] | None = None, show: Show = QUIET) -> dict[str, float]:
    """Start every component that is not running, in order; seconds each took."""
    timings = {}
    for component in components():
        if only and component.name not in only:
            continue
        with show.busy(f"starting {component.name} on {component.url} ..."):
            timings[component.name] = start(component, config.EMULATOR_START_TIMEOUT, show)
        show.say(f"[green]✓[/green] {component.name} healthy at {component.url}")
    return timings


def down() -> list[str]:
    """Stop every component, last started first; the names that were running."""
    return [c.name for c in reversed(components()) if stop(c)]


# ------------------------------ Benchmark ------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # /proc's CPU times count these per second
BENCH_HANDLER = "def handler(event, context):\n    return {'ok': True}\n"


def children(pid: int) -> dict[int, list[str]]:
    """``pid``'s child processes (not yet reaped), with their /proc stat fields: for the
    emulator, its Lambda runtimes. Each runtime leads a session of its own (the plugin's
    process.py, so that a kill takes the handler's own children too): they are not in the
    emulator's process group."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = stat_fields(stat)
        if fields and int(fields[1]) == pid:
            found[int(stat.parent.name)] = fields
    return found


def _tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (LocalStack + its Lambda runtimes)."""
    if not pid:  # the emulator is gone: not pid 0's children (init, kthreadd)
        return 0.0
    total_kib = 0
    for member in (pid, *children(pid)):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total_kib / 1024


def cpu_s(fields: list[str], reaped: bool = False) -> float:
    """User + system CPU seconds in a process's /proc stat ``fields`` (``stat_fields``): its
    own, or with ``reaped`` those of the children it has waited for."""
    first = 13 if reaped else 11  # fields after the name, from 0: utime, stime, cutime, cstime
    return (int(fields[first]) + int(fields[first + 1])) / CLOCK_TICKS


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds the stack's host processes have used so far: the emulator, the model
    server (None when it is not this stack's: a second stack of ``scones bench workflow``
    shares the first one's), the emulator's live Lambda runtimes by pid, and ``reaped``: the
    runtimes that ended and that the emulator waited for (their whole lives). ``scones bench
    workflow`` takes one before and one after its run."""

    emulator: float
    model: float | None
    runtimes: dict[int, float]
    reaped: float

    def since(self, earlier: CpuSnapshot) -> dict[str, float | None]:
        """CPU seconds per part between ``earlier`` and this snapshot."""
        # A runtime that ended in between is in ``reaped`` with its whole life: take off
        # what it had used before ``earlier``.
        ended = sum(t for pid, t in earlier.runtimes.items() if pid not in self.runtimes)
        live = sum(t - earlier.runtimes.get(pid, 0.0) for pid, t in self.runtimes.items())
        model = None if self.model is None or earlier.model is None else self.model - earlier.model
        return {
            "emulator": self.emulator - earlier.emulator,
            "lambda_runtimes": live + self.reaped - earlier.reaped - ended,
            "model": model,
        }


def cpu_snapshot() -> CpuSnapshot | None:
    """The CPU the stack ``scones up`` started here has used so far; None when the emulator is
    not such a host process (down, a docker compose stack, the cloud)."""
    if config.TARGET != "local":  # a local stack may run too, but the work is on AWS
        return None
    pids = {c.name: _read_pid(c) for c in components()}
    emulator = stat_fields(Path(f"/proc/{pids['emulator']}/stat")) if pids["emulator"] else None
    if not emulator:
        return None
    model = stat_fields(Path(f"/proc/{pids['model']}/stat")) if pids["model"] else None
    return CpuSnapshot(
        emulator=cpu_s(emulator),
        model=cpu_s(model) if model else None,
        runtimes={pid: cpu_s(fields) for pid, fields in children(pids["emulator"]).items()},
        reaped=cpu_s(emulator, reaped=True),
    )


def bench_stack(invokes: int = 20) -> dict[str, float]:
    """Cold and warm emulator start, its memory, Lambda cold and warm invoke latency.

    Runs on its own state dir and port so a user's stack is untouched; cold = empty cache.
    """
    emulator = next(c for c in components() if c.name == "emulator")
    # beside the real state, not in /tmp: Lambda environments then get their private /tmp as
    # in a user's stack (a state dir under /tmp would be hidden by it)
    config.STATE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=config.STATE_DIR) as state:
        saved = config.STATE_DIR, config.EMULATOR_PORT
        config.STATE_DIR = Path(state)
        config.EMULATOR_PORT = free_port(config.EMULATOR_HOST)
        component = Component("emulator", emulator.host, config.EMULATOR_PORT, emulator.health_path)
        try:
            cold = start(component, config.EMULATOR_START_TIMEOUT)
            stop(component)
            warm = start(component, config.EMULATOR_START_TIMEOUT)
            client = boto3.client(
                "lambda",
                endpoint_url=component.url,
                region_name=config.REGION,
                aws_access_key_id="test",
                aws_secret_access_key="test",
            )
            archive = io.BytesIO()
            with zipfile.ZipFile(archive, "w") as zf:
                zf.writestr("bench.py", BENCH_HANDLER)
            client.create_function(
                FunctionName="bench",
                Runtime="python3.11",
                Handler="bench.handler",
                Role=f"arn:aws:iam::{config.ACCOUNT_ID}:role/bench",
                Code={"ZipFile": archive.getvalue()},
            )
            client.get_waiter("function_active_v2").wait(FunctionName="bench")
            began = time.perf_counter()
            client.invoke(FunctionName="bench", Payload=b"{}")
            cold_invoke = time.perf_counter() - began
            warm_times = []
            for _ in range(invokes):
                began = time.perf_counter()
                client.invoke(FunctionName="bench", Payload=b"{}")
                warm_times.append(time.perf_counter() - began)
            rss = _tree_rss_mib(_read_pid(component) or 0)
        finally:
            stop(component)
            config.STATE_DIR, config.EMULATOR_PORT = saved
    return {
        "emulator_cold_start_s": round(cold, 2),
        "emulator_warm_start_s": round(warm, 2),
        "emulator_rss_mib": round(rss, 1),
        "lambda_cold_invoke_ms": round(cold_invoke * 1000, 1),
        "lambda_warm_invoke_p50_ms": round(statistics.median(warm_times) * 1000, 1),
        "lambda_warm_invoke_max_ms": round(max(warm_times) * 1000, 1),
    }


def free_port(host: str = "127.0.0.1") -> int:
    """A port that nothing uses, for a private server: drawn below the kernel's ephemeral
    range, because a port from bind(0) lies inside it, where any process's next outgoing
    connection or bind(0) may take it before our server binds it (CI saw that happen)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    candidates = random.sample(range(20000, low), min(50, low - 20000)) if low > 20000 else []
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            if not _port_in_use(host, port):
                return port
    with socket.socket() as sock:  # no such range here (another OS): the kernel's choice
        sock.bind((host, 0))
        return sock.getsockname()[1]
