"""`scones bench faults`: a stream of orders while the endpoint, a Lambda and the emulator fail.

Each fault gets its own stream (``scones load``'s runner: staged images plus a share of bad
inputs, every execution named), injected a quarter into it:

- ``endpoint``: the model server is SIGKILLed, kept down ``outage_s``, started again;
- ``lambda``: one classify_image runtime process (awslambdaric) is SIGKILLed;
- ``emulator``: LocalStack is SIGKILLed and started again (state loaded from disk), then the
  stack reconciles as `scones up` does.

After the stream, `scones redrive` runs whatever failed for an infrastructure reason, and each
order is counted by its final outcome (the redrive's, if it had one). ``lost`` counts orders
with no final outcome; ``failed_infra`` those still failed for a reason of ours.
``recovery_s`` is from the fault's end (the component healthy again; for the Lambda, the kill)
until the last order sent before that moment has its final outcome.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from scones import config, recovery, stack
from scones.deploy import class_names
from scones.executions import REVIEW_ERROR, TERMINAL, list_executions
from scones.load import LoadRun, bad_samples, new_run_id, plan, staged_images
from scones.report import image_machine_arn

LOG = logging.getLogger(__name__)

FAULTS = ("endpoint", "lambda", "emulator")
BAD_SHARE = 0.1
FINAL_WAIT_S = 400.0  # an order caught by the outage may back off ~135 s (up to 270 s)
POLL_S = 2.0  # final outcomes are asked this often (DescribeExecution per unfinished order)


@dataclass
class FaultResult:
    """One fault's stream, order by order; `asdict` is its --json entry."""

    fault: str
    sent: int = 0
    succeeded: int = 0
    reviewed: int = 0
    failed_bad_input: int = 0
    failed_infra: int = 0
    lost: int = 0
    redriven: int = 0
    recovery_s: float = 0.0
    objects_before: int | None = None
    objects_after: int | None = None
    fault_detail: str = ""


def object_count(c) -> int:
    """Objects in the data bucket (the dataset, captures, uploads): what a restart must keep."""
    return sum(
        page.get("KeyCount", 0)
        for page in c.s3.get_paginator("list_objects_v2").paginate(Bucket=config.BUCKET)
    )


def _component(name: str) -> stack.Component:
    return next(c for c in stack.components() if c.name == name)


def _kill_group(component: stack.Component) -> int:
    pid = stack._read_pid(component)
    if pid is None:
        raise stack.StackError(f"{component.name} is not running; `scones up` first")
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    # the group gone and its port closed (a runtime holding a connection can outlive it briefly)
    while time.monotonic() < deadline and (
        stack._group_alive(pid) or stack._port_in_use(component.host, component.port)
    ):
        time.sleep(0.1)
    return pid


def lambda_runtimes(function: str = "classify_image") -> list[int]:
    """Pids of the emulator's awslambdaric processes that run ``function``'s handler."""
    emulator = stack._read_pid(_component("emulator"))
    if emulator is None:
        return []
    found = []
    for pid in stack.children(emulator):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "awslambdaric" in cmdline and f"{function}.handler" in cmdline:
            found.append(pid)
    return found


def inject(fault: str, outage_s: float) -> tuple[float, str, int]:
    """Cause one fault; when it was over (monotonic time), what was done, executions redriven."""
    if fault == "endpoint":
        model = _component("model")
        _kill_group(model)
        time.sleep(outage_s)
        stack.start(model, 90)
        return time.monotonic(), f"model server SIGKILLed, down {outage_s:g} s", 0
    if fault == "lambda":
        pids = lambda_runtimes()
        if not pids:
            return time.monotonic(), "no classify_image runtime was running", 0
        os.kill(pids[0], signal.SIGKILL)
        return time.monotonic(), f"classify_image runtime {pids[0]} SIGKILLed", 0
    if fault == "emulator":
        began = time.monotonic()
        _kill_group(_component("emulator"))
        stack.start(_component("emulator"), config.EMULATOR_START_TIMEOUT)
        done = recovery.reconcile()
        back = time.monotonic()
        return back, f"emulator SIGKILLed, back in {back - began:.1f} s", len(done.redriven)
    raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")


def final_outcomes(c, machine: str, prefix: str, names: list[str]) -> dict[str, str | None]:
    """Each order's final outcome, following redrives: succeeded, reviewed, bad_input, infra."""
    by_name = {e["name"]: e for e in list_executions(c, machine, prefix)}
    outcomes: dict[str, str | None] = {}
    for name in names:
        current = name
        while True:
            nxt, _ = recovery.successor(current)
            if nxt not in by_name:
                break
            current = nxt
        e = by_name.get(current)
        if e is None or e["status"] not in TERMINAL:
            outcomes[name] = None
            continue
        if e["status"] == "SUCCEEDED":
            outcomes[name] = "succeeded"
            continue
        d = c.sfn.describe_execution(executionArn=e["executionArn"])
        if d.get("error") == REVIEW_ERROR:
            outcomes[name] = "reviewed"
        elif recovery.is_infra(d["status"], d.get("error")):
            outcomes[name] = "infra"
        else:
            outcomes[name] = "bad_input"
    return outcomes


def run_fault(
    c, fault: str, rate: float, duration: float, outage_s: float, seed: int = 0
) -> FaultResult:
    """One stream with one fault a quarter in; every order accounted for at the end."""
    count = max(4, round(rate * duration))
    good = staged_images(c)
    bad = bad_samples(c, class_names())
    run_id = new_run_id()
    prefix = f"faults-{fault}-{run_id}-"
    names = [f"{prefix}{i:05d}" for i in range(count)]
    items = plan(count, good, bad, BAD_SHARE, seed, run_id)
    runner = LoadRun(c, items, names, rate=rate)
    result = FaultResult(fault)
    stream = threading.Thread(target=runner.send, name="faults-stream", daemon=True)
    stream.start()
    time.sleep(duration / 4)
    if fault == "emulator":  # what the kill may take: the counts straight before it
        result.objects_before = object_count(c)
    fault_over, result.fault_detail, result.redriven = inject(fault, outage_s)
    early = names[: runner.sent]  # sent before the fault was over: the ones it could touch
    if fault == "emulator":
        result.objects_after = object_count(c)
    machine = image_machine_arn(c)
    deadline = time.monotonic() + FINAL_WAIT_S
    recovered_at = None
    while True:
        result.redriven += len(recovery.redrive(c, name_prefix=prefix).redriven)
        outcomes = final_outcomes(c, machine, prefix, names)
        now = time.monotonic()
        if recovered_at is None and all(outcomes[n] not in (None, "infra") for n in early):
            recovered_at = now
        done = all(v not in (None, "infra") for v in outcomes.values())
        if (done and not stream.is_alive()) or now > deadline:
            break
        time.sleep(POLL_S)
    stream.join()
    result.recovery_s = round(max(0.0, (recovered_at or now) - fault_over), 1)
    result.sent = count
    values = [outcomes.get(n) for n in names]
    result.succeeded = values.count("succeeded")
    result.reviewed = values.count("reviewed")
    result.failed_bad_input = values.count("bad_input")
    result.failed_infra = values.count("infra")
    result.lost = values.count(None)
    return result
