"""The compose stack seen from the host: `scones bench compose` builds, starts and times it."""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from scones import PROJECT_ROOT, SconesError, config, workflow
from scones.stage import default_dataset

BUILD_TIMEOUT_S = 1800  # a cold build installs LocalStack and onnxruntime from PyPI
UP_TIMEOUT_S = 900  # the first `up` may download CIFAR-100
DOWN_TIMEOUT_S = 180


class ComposeError(SconesError):
    """A `docker compose` command failed or is not available."""


def compose_env(data_dir: Path | None) -> dict[str, str]:
    """This process's environment for compose: host ports as `scones up` uses them."""
    env = dict(os.environ)
    env.update(
        SCONES_EMULATOR_PORT=str(config.EMULATOR_PORT),
        SCONES_MODEL_PORT=str(config.MODEL_PORT),
        SCONES_EXPLORER_PORT=env.get("SCONES_EXPLORER_PORT") or str(config.MODEL_PORT + 1),
    )
    if data_dir is not None:
        env["SCONES_DATA_DIR"] = str(Path(data_dir).expanduser().resolve())
    return env


def compose(project: str, env: dict[str, str], *args: str, timeout: float) -> str:
    """Run `docker compose` on the repository's compose.yaml; ComposeError with its stderr."""
    argv = ["docker", "compose", "--project-name", project, *args]
    try:
        done = subprocess.run(
            argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ComposeError(f"docker compose {' '.join(args)}: {err}") from err
    if done.returncode != 0:
        raise ComposeError(f"docker compose {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def image_sizes_mb(project: str, env: dict[str, str]) -> dict[str, float]:
    """Each service's image size in MB (as `docker images` counts it: base layers included)."""
    services = json.loads(compose(project, env, "config", "--format", "json", timeout=60))
    sizes: dict[str, float] = {}
    for name, service in sorted(services["services"].items()):
        image = service.get("image") or f"{project}-{name}"
        size = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", image],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if size.returncode == 0:
            sizes[name] = round(int(size.stdout.strip()) / 1e6, 1)
    return sizes


def bench_compose(data_dir: Path | None, runs: int = 20, cold: bool = True) -> dict:
    """Build (cold: --no-cache, then cached), `up --wait`, time executions, then `down -v`.

    Runs as its own compose project on this process's host ports (SCONES_EMULATOR_PORT, ...);
    ``data_dir`` is mounted as SCONES_DATA_DIR (None: the deployer downloads CIFAR-100).
    """
    project = f"scones-bench-{config.EMULATOR_PORT}"
    env = compose_env(data_dir)
    figures: dict = {"build_s": {}}
    compose(project, env, "down", "-v", "--remove-orphans", timeout=DOWN_TIMEOUT_S)
    if cold:
        t = time.monotonic()
        compose(project, env, "build", "--no-cache", timeout=BUILD_TIMEOUT_S)
        figures["build_s"]["cold"] = round(time.monotonic() - t, 1)
    t = time.monotonic()
    compose(project, env, "build", timeout=BUILD_TIMEOUT_S)
    figures["build_s"]["cached"] = round(time.monotonic() - t, 1)
    try:
        t = time.monotonic()
        compose(project, env, "up", "-d", "--wait", timeout=UP_TIMEOUT_S)
        figures["up_s"] = round(time.monotonic() - t, 1)
        image = _bench_image(data_dir)
        t = time.monotonic()
        first = workflow.run_image(str(image))
        figures["first_execution_ms"] = round((time.monotonic() - t) * 1000, 1)
        warm = []
        for _ in range(runs):
            t = time.monotonic()
            outcome = workflow.run_image(str(image))
            warm.append((time.monotonic() - t) * 1000)
        figures["warm_execution_p50_ms"] = round(statistics.median(warm), 1)
        figures["runs"] = runs
        figures["status"] = {"first": _ended(first), "last": _ended(outcome)}
        figures["image_mb"] = image_sizes_mb(project, env)
    finally:
        compose(project, env, "down", "-v", "--remove-orphans", timeout=DOWN_TIMEOUT_S)
    return figures


def _ended(outcome) -> str:
    """How an execution ended: SUCCEEDED, or FAILED (its error)."""
    return f"{outcome.status} ({outcome.error})" if outcome.error else outcome.status


def _bench_image(data_dir: Path | None) -> Path:
    """The first test image of data_dir (when staged) or of the default staged dataset, else a
    generated PNG, as a file."""
    from scones.bench_workflow import BenchError, test_split

    for folder in ([Path(data_dir)] if data_dir else []) + [default_dataset()]:
        try:
            first = test_split(folder)[0]
            name, data = first.name, first.body
            break
        except BenchError:
            continue
    else:  # nothing staged on the host: the deployer staged inside its container
        from PIL import Image  # lazy: Pillow only for this fallback image

        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, "PNG")
        name, data = "synthetic.png", buffer.getvalue()
    path = config.STATE_DIR / "bench" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
