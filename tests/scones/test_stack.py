"""`scones up/status/down` as a user runs them: real processes, their own state dir and ports."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from scones import PROJECT_ROOT, config, stack
from scones.stack import free_port

pytestmark = pytest.mark.integration


def _scones(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scones", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
    )


def _processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line or environment names `text`."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            blob = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in blob and int(proc.name) != os.getpid():
            pids.append(int(proc.name))
    return pids


@pytest.fixture
def user_env(tmp_path) -> dict[str, str]:
    """A second stack beside the test session's: fresh state dir, free ports, the shared venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        SCONES_STATE_DIR=str(tmp_path / "state"),
        SCONES_EMULATOR_VENV=str(config.EMULATOR_VENV),
        SCONES_EMULATOR_PORT=str(free_port()),
        SCONES_MODEL_PORT=str(free_port()),
    )
    return env


def test_up_status_down_leaves_nothing_running(user_env, emulator):
    # `emulator` only makes sure the emulator venv is installed before a second stack starts
    up = _scones(user_env, "up")
    assert up.returncode == 0, up.stderr
    status = _scones(user_env, "status", "--json")
    assert status.returncode == 0, status.stderr
    components = json.loads(status.stdout)
    assert set(components) == {"emulator", "model"}
    for name, row in components.items():
        assert row["healthy"], f"{name} not healthy: {row}"
        assert row["pid"] and Path(f"/proc/{row['pid']}").exists()
    again = _scones(user_env, "up")  # idempotent: starts nothing new
    assert again.returncode == 0, again.stderr
    assert json.loads(_scones(user_env, "status", "--json").stdout) == components

    down = _scones(user_env, "down")
    assert down.returncode == 0, down.stderr
    assert "emulator" in down.stderr and "model" in down.stderr
    assert _processes_mentioning(user_env["SCONES_STATE_DIR"]) == []
    after = json.loads(_scones(user_env, "status", "--json").stdout)
    assert not any(row["healthy"] or row["pid"] for row in after.values())


def test_up_names_the_taken_port(user_env):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(user_env["SCONES_EMULATOR_PORT"])))
        squatter.listen()
        result = _scones(user_env, "up", "--only", "emulator")
    assert result.returncode == 1
    assert f"port {user_env['SCONES_EMULATOR_PORT']}" in result.stderr
    assert "SCONES_EMULATOR_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_up_without_a_model_says_how_to_get_one(user_env, tmp_path):
    user_env["SCONES_MODEL_DIR"] = str(tmp_path / "no-model")
    result = _scones(user_env, "up", "--only", "model")
    assert result.returncode == 1
    assert "no model at" in result.stderr and "scones train" in result.stderr
    assert "Traceback" not in result.stderr


def test_up_that_gives_up_on_a_slow_start_leaves_nothing_running(user_env, emulator):
    """A start that is not healthy in time is stopped, even seconds after its exec: `scones
    down` cannot find it afterwards (its pid file is gone), so nothing else would."""
    user_env["SCONES_EMULATOR_START_TIMEOUT"] = "0.01"
    result = _scones(user_env, "up", "--only", "emulator")
    assert result.returncode == 1
    assert "emulator not healthy after" in result.stderr
    assert "Traceback" not in result.stderr
    assert _processes_mentioning(user_env["SCONES_STATE_DIR"]) == []
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", int(user_env["SCONES_EMULATOR_PORT"]))) != 0


@pytest.mark.slow
def test_bench_stack_smoke_prints_its_figures_and_leaves_nothing(user_env, emulator):
    result = _scones(user_env, "bench", "stack", "--smoke", "--json", timeout=400)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    print(figures)
    assert set(figures) == {
        "emulator_cold_start_s", "emulator_warm_start_s", "emulator_rss_mib",
        "lambda_cold_invoke_ms", "lambda_warm_invoke_p50_ms", "lambda_warm_invoke_max_ms",
    }  # fmt: skip
    assert all(value > 0 for value in figures.values()), figures
    state = Path(user_env["SCONES_STATE_DIR"])
    assert _processes_mentioning(str(state)) == []
    assert not list(state.glob("bench-*")), "the bench's own state dir was left behind"


def test_memory_of_the_emulator_counts_its_runtimes_in_their_own_sessions():
    # Lambda runtimes lead sessions of their own, so a process-group sum missed them all
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; b = b'x' * (300 << 20); print(1, flush=True); "
         "time.sleep(60)"],
        stdout=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        assert child.stdout.readline().strip() == b"1"  # its 300 MiB are resident
        assert child.pid in stack.children(os.getpid())
        assert stack._tree_rss_mib(os.getpid()) >= stack._tree_rss_mib(child.pid) + 10 > 300
    finally:
        child.kill()
        child.wait(timeout=10)
    assert stack._tree_rss_mib(0) == 0.0  # no emulator: not the kernel's own processes


def test_cpu_since_counts_a_runtime_that_ended_for_its_time_in_between_only():
    earlier = stack.CpuSnapshot(emulator=10.0, model=5.0, runtimes={101: 2.0, 102: 1.0}, reaped=0.5)
    # 101 ran 0.5 s more and ended (reaped: its whole 2.5 s), 102 ran 0.25 s, 103 started: 0.5 s
    later = stack.CpuSnapshot(emulator=12.0, model=6.5, runtimes={102: 1.25, 103: 0.5}, reaped=3.0)

    assert later.since(earlier) == {"emulator": 2.0, "lambda_runtimes": 1.25, "model": 1.5}
    # a model server that is not this stack's (a second stack of the bench) is not counted
    shared = stack.CpuSnapshot(emulator=12.0, model=None, runtimes={}, reaped=0.5)
    assert shared.since(earlier)["model"] is None


def test_cpu_snapshot_is_none_where_no_stack_runs_as_host_processes():
    # this test's own state dir: no pid files (as for a compose stack or the cloud)
    assert stack.cpu_snapshot() is None


def test_a_private_port_is_drawn_where_no_bind_to_port_zero_can_land():
    # A port from bind(0) lies in this range, where the kernel hands out every bind(0) and
    # outgoing connection: another process could take it before a private server binds it.
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    if low <= 20000:
        pytest.skip(f"this kernel's ephemeral range starts at {low}: no room below it")
    for _ in range(20):
        port = free_port("127.0.0.1")
        assert not low <= port <= high
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free to bind ...
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0  # ... and nothing listens there


# Listens on a port; on SIGTERM its main thread ends first while another thread lives on for
# 2 s, as when the emulator's last thread is still in an fsync under heavy disk writes.
MAIN_THREAD_ENDS_FIRST = """
import ctypes, signal, socket, sys, threading, time
listener = socket.socket()
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(8)
def end_main_thread_first(*_):
    threading.Thread(target=time.sleep, args=(2.0,)).start()
    ctypes.CDLL(None).pthread_exit(None)
signal.signal(signal.SIGTERM, end_main_thread_first)
print("listening", flush=True)
while True:
    time.sleep(1)
"""


def test_stop_returns_once_the_port_is_free_even_if_the_main_thread_ended_first(
    tmp_path, monkeypatch
):
    """A process whose main thread has ended shows as a zombie while its other threads finish,
    and keeps its listening socket until the last one has: `scones down` must wait for that, or
    the next `scones up` finds the port taken."""
    monkeypatch.setattr(config, "STATE_DIR", tmp_path)
    port = free_port()
    component = stack.Component("model", "127.0.0.1", port, "/ping")
    # the last argument gives the command line the marker stop() checks before signalling
    proc = subprocess.Popen(
        [sys.executable, "-c", MAIN_THREAD_ENDS_FIRST, str(port), "local_model.serve"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline() == b"listening\n"
        component.pid_file.parent.mkdir(parents=True)
        component.pid_file.write_text(f"{proc.pid}\n")
        assert stack.stop(component)
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, "stop() returned, port still held"
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _fake_python(path: Path, config_args: str) -> Path:
    """An executable that answers the sysconfig question as a Python built so would."""
    path.parent.mkdir(parents=True)
    path.write_text(f'#!/bin/sh\necho "{config_args}"\n')
    path.chmod(0o755)
    return path


def test_only_a_pyenv_build_without_pgo_gets_the_slower_interpreter_note(tmp_path, monkeypatch):
    """pyenv configures CPython without --enable-optimizations unless told (the emulator ran the
    workflow slower on such a build); a build with it, or any interpreter outside pyenv, is
    left alone."""
    root = tmp_path / "pyenv"
    monkeypatch.setenv("PYENV_ROOT", str(root))
    plain = _fake_python(root / "versions/3.13.0/bin/python3.13", "'--prefix=x' '--enable-shared'")
    tuned = _fake_python(
        root / "versions/3.13.5/bin/python3.13", "'--enable-optimizations' '--with-lto'"
    )
    elsewhere = _fake_python(tmp_path / "usr/bin/python3.13", "'--enable-shared'")

    assert stack.unoptimized_pyenv_build(plain) is True
    assert stack.unoptimized_pyenv_build(tuned) is False
    assert stack.unoptimized_pyenv_build(elsewhere) is False
    link = tmp_path / "venv/bin/python"  # a venv's python links into pyenv: judged by its target
    link.parent.mkdir(parents=True)
    link.symlink_to(plain)
    assert stack.unoptimized_pyenv_build(link) is True
