"""`scones demo`: the whole job in one command: stack, data, model, workflow, test split, report.

Every step is idempotent: a second run finds the stack up, the data staged, the workflow deployed,
and the test split's executions already there (their names are fixed by the model, threshold and
dataset), so it only rewrites the report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from scones import PROJECT_ROOT, QUIET, SconesError, Show, config, stack
from scones import stage as staging
from scones.dataset import DEFAULT_CLASSES, MARKER, is_staged
from scones.deploy import deploy
from scones.load import LoadRun, staged_images
from scones.report import ReportSummary, build_report, clients, deployed_threshold

LOG = logging.getLogger(__name__)

CLASSES = DEFAULT_CLASSES  # the original project's two classes
DATASET = staging.dataset_name(CLASSES)  # where `scones stage` puts them
EXPLORER_URL = "http://127.0.0.1:8501"  # `scones explore`'s default address
# The server writes a capture file every 5 s (and by size); a server whose S3 writes failed
# (the bucket did not exist before `stage`) retries at most every 60 s
# (local_model.capture.RETRY_MAX_SECONDS), so waiting that long covers one retry.
CAPTURE_FLUSH_TIMEOUT_S = 75.0
TRAIN_TIMEOUT_S = 3600.0


class DemoError(SconesError):
    """A demo step failed; the message names the step and what to do."""


@dataclass
class DemoResult:
    """What the demo did and where its outputs are."""

    name_prefix: str
    executions: int
    reused: int
    summary: ReportSummary
    report: str
    explorer: str
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    skipped: list[str] = field(default_factory=list)  # steps that found their work done


# ------------------------------ Steps ------------------------------


def _model_health() -> dict | None:
    try:
        with urllib.request.urlopen(config.model_url() + "/health", timeout=3) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def start_stack(only: list[str], show: Show = QUIET) -> bool:
    """Start the named local components (capture on); True if something had to start."""
    os.environ["SCONES_CAPTURE_ENABLED"] = "1"  # the model server reads it when it starts
    todo = [c for c in stack.components() if c.name in only and not stack.is_healthy(c)]
    if "model" in only:
        health = _model_health()
        if health is not None and health.get("capture") is None:
            # The report's confidence graph needs the endpoint's data capture.
            show.say("restarting the model server with data capture on")
            stack.stop(next(c for c in stack.components() if c.name == "model"))
            todo = [c for c in stack.components() if c.name in only and not stack.is_healthy(c)]
    for component in todo:
        with show.busy(f"starting {component.name} on {component.url} ..."):
            stack.start(component, config.EMULATOR_START_TIMEOUT, show)
        show.say(f"[green]✓[/green] {component.name} up at {component.url}")
    return bool(todo)


def staged_already(c, source: str, bucket: str) -> bool:
    """Whether this source was staged and uploaded before: local marker == the one in S3."""
    folder = config.STATE_DIR / "datasets" / DATASET
    if not is_staged(folder):
        return False
    marker = (folder / MARKER).read_bytes()
    try:
        if json.loads(marker).get("source") != source:
            return False
        remote = c.s3.get_object(Bucket=bucket, Key=f"datasets/{DATASET}/{MARKER}")["Body"].read()
    except Exception:  # not uploaded, another bucket, unreadable: stage again
        return False
    return remote == marker


def ensure_model(show: Show = QUIET) -> bool:
    """The default model's directory exists, or `scones train` makes it; True if trained now."""
    if (config.MODEL_DIR / "model.onnx").is_file():
        return False
    show.say(f"no model at {config.MODEL_DIR}; training one with `scones train` ...")
    cmd = [sys.executable, "-m", "scones", "train"]
    try:
        done = subprocess.run(cmd, cwd=PROJECT_ROOT, timeout=TRAIN_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise DemoError(f"`scones train` ran over {TRAIN_TIMEOUT_S:.0f} s") from err
    if done.returncode != 0 or not (config.MODEL_DIR / "model.onnx").is_file():
        raise DemoError(
            f"`scones train` did not produce {config.MODEL_DIR / 'model.onnx'} "
            f"(exit {done.returncode}); train a model or set SCONES_MODEL_DIR"
        )
    return True


def run_fingerprint(threshold: float) -> str:
    """Names the demo's executions: the same model, threshold and data give the same names."""
    digest = hashlib.sha256(f"{DATASET}|{threshold}|{config.ENDPOINT_NAME}".encode())
    model = config.MODEL_DIR / "model.onnx"
    if model.is_file():
        digest.update(model.read_bytes())
    return digest.hexdigest()[:8]


def wait_for_capture(timeout: float = CAPTURE_FLUSH_TIMEOUT_S) -> None:
    """Until the local model server has written every captured record to S3 (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        capture = (_model_health() or {}).get("capture")
        # records_pending, not records_uploaded >= records: a restarted server also uploads the
        # records an earlier run left in its spool, which would end the wait with the last
        # buffer of this run still in memory.
        if not capture or capture["records_pending"] == 0:
            return
        time.sleep(0.5)
    LOG.warning("data capture not fully in S3 after %.0f s; the report may miss a few", timeout)


def demo(source: str | None = None, out: Path | None = None, show: Show = QUIET) -> DemoResult:
    """Run the whole job; see the module docstring. ``show``: how each step reports itself."""
    local = config.TARGET == "local"
    source = source or config.DATASET_URL
    steps: dict[str, float] = {}
    skipped: list[str] = []

    def step(name: str, began: float) -> None:
        steps[name] = round(time.monotonic() - began, 2)

    t = time.monotonic()
    if local and not start_stack(["emulator"], show):
        skipped.append("emulator")
    step("emulator", t)
    c = clients()

    t = time.monotonic()
    if staged_already(c, source, config.BUCKET):
        skipped.append("stage")
        show.say(f"[green]✓[/green] data already staged from {source}")
    else:
        summary = staging.stage(source, CLASSES, show=show)
        show.say(f"[green]✓[/green] staged {summary.counts} to {summary.s3_uri}")
    step("stage", t)

    t = time.monotonic()
    if not ensure_model(show):
        skipped.append("train")
    if local and not start_stack(["model"], show):
        skipped.append("model server")
    step("model", t)

    t = time.monotonic()
    with show.busy("deploying the workflow ..."):
        deployed = deploy()
    if not deployed.changed:
        skipped.append("deploy")
    show.say(f"[green]✓[/green] workflow deployed ({len(deployed.changed)} changes)")
    step("deploy", t)

    t = time.monotonic()
    items = staged_images(c, DATASET, "test")
    prefix = f"demo-{run_fingerprint(deployed_threshold(c))}-"
    names = [f"{prefix}{i:04d}" for i in range(len(items))]
    run = LoadRun(c, items, names)
    run.run(prefix, wait_s=60 + 0.8 * len(items), show=show)
    reused = sum(1 for tr in run.tracked if tr.reused)
    lost = [tr.name for tr in run.tracked if tr.outcome == "unaccounted"]
    if lost:
        raise DemoError(
            f"{len(lost)} executions did not end in time (e.g. {lost[0]}); "
            "see `scones status` and run `scones demo` again to resume"
        )
    show.say(
        f"[green]✓[/green] {len(items)} test images through the workflow "
        f"({reused} from an earlier run)"
    )
    step("stream", t)

    t = time.monotonic()
    if local and reused < len(items):
        wait_for_capture()
    result = build_report(out, name_prefix=prefix, c=c)
    step("report", t)
    return DemoResult(
        prefix, len(items), reused, result.summary, str(result.html), EXPLORER_URL, steps, skipped
    )
