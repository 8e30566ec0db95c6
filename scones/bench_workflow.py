"""`scones bench workflow`: executions/s and warm latency on the path real orders take."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import ClientError

from scones import QUIET, SconesError, Show, UsageError, config, stack
from scones.aws import Clients
from scones.executions import TERMINAL, outcome_of
from scones.stage import default_dataset
from scones.workflow import image_input, start, state_machine_arn, wait

BENCH_PREFIX = "bench/"
BENCH_POLL_S = 0.01  # latency runs poll this often: the figure is the workflow's, not our polling
# Latency runs first ask after this share of the shortest run so far: every DescribeExecution
# costs the emulator ~2 ms of CPU, and polling from the start slowed the very execution it
# timed (2026-12-06: Step Functions p50 47-48 ms unpolled, 52-70 ms polled every 5 ms).
FIRST_POLL_SHARE = 0.8
LIST_POLL_S = 1.0  # throughput runs: the running executions are listed this often
# ListExecutions builds an item for every execution it returns (LocalStack has no paging of its
# own): listing them all each second cost a 10,000-event run more the longer it went. Polls ask
# for the RUNNING ones; the full list is fetched this often, and when nothing runs.
FULL_LIST_S = 15.0
LIST_RETRIES = 20
WINDOW = 1000  # executions per throughput window (the drift compares the first and the last)
# Uploads stop while this many executions run: the bench measures sustained throughput, not a
# backlog. A 10,000-event burst uploaded faster than it ran piled up running executions (each
# holding emulator threads) and its windows measured the pile-up, not the workflow.
MAX_IN_FLIGHT = 200
SECOND_START_S = 600  # how long a second stack (--baseline, --no-persistence) may take to start
GRACE_S = 60.0  # after the wait budget: how long still-running executions are followed to an end
DESCRIBE_THREADS = 8
PATHS = ("mix", "success", "review")
# The outcome a --path keeps (report.outcome_of's names).
PATH_OUTCOME = {"success": "succeeded", "review": "review"}
# Second stacks for --baseline / --no-persistence: the emulator settings each changes.
VARIANTS = {
    "stock": {"SCONES_EMULATOR_SPEEDUPS": "0"},
    "no_persistence": {"SCONES_EMULATOR_PERSIST": ""},
}


class BenchError(SconesError):
    """The bench cannot run: a second stack that failed to start or to bench."""


class BenchUsageError(BenchError, UsageError):
    """The bench was asked for something it cannot do: no staged dataset, a bad --path."""


@dataclass(frozen=True)
class Event:
    """One uploaded object: its kind (image, not_image, other_vehicle) and bytes."""

    kind: str
    name: str
    body: bytes


def test_split(data: Path) -> list[Event]:
    """The staged test split's images, in .lst order."""
    from local_model.lst import parse_lst

    lst = data / "test.lst"
    if not lst.is_file():
        raise BenchUsageError(
            f"no staged dataset at {data} (no test.lst): run `scones stage`, or pass --data DIR "
            "(a folder with test.lst and test/)"
        )
    events = []
    for entry in parse_lst(lst.read_text(encoding="utf-8"), str(lst)):
        path = data / "test" / entry.path
        if not path.is_file():
            raise BenchUsageError(f"{lst} names {entry.path}, which is not in {data / 'test'}")
        events.append(Event("image", path.name, path.read_bytes()))
    if not events:
        raise BenchUsageError(f"{lst} is empty")
    return events


def bad_inputs(clients: Clients) -> list[Event]:
    """The load generator's bad inputs (not images, other vehicles), as bytes to upload."""
    from scones.deploy import class_names
    from scones.load import bad_samples

    events = []
    for kind, items in bad_samples(clients, class_names()).items():
        for item in items:
            body = clients.s3.get_object(Bucket=config.BUCKET, Key=item.s3_key)["Body"].read()
            events.append(Event(kind, item.s3_key.rsplit("/", 1)[-1], body))
    return events


def mix(good: list[Event], bad: list[Event], count: int, seed: int) -> list[Event]:
    """``count`` events: the good ones in order, cycled, with the load generator's share of bad
    ones in the slots its planner picks (a missing key cannot come from an upload: a bad
    upload of another kind takes its slot)."""
    from scones.load import LoadItem, plan

    if not bad:
        return [good[i % len(good)] for i in range(count)]
    by_kind: dict[str, list[LoadItem]] = {}
    for i, event in enumerate(bad):
        by_kind.setdefault(event.kind, []).append(LoadItem(event.kind, str(i)))
    slots = plan(count, [LoadItem("image", "")], by_kind, BAD_SHARE, seed, "bench")
    events, g = [], 0
    for i, item in enumerate(slots):
        if item.kind == "image":
            events.append(good[g % len(good)])
            g += 1
        elif item.kind == "missing":
            events.append(bad[i % len(bad)])
        else:
            events.append(bad[int(item.s3_key)])
    return events


BAD_SHARE = 0.1  # as `scones load`'s default --bad-share


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def bench_latency(clients: Clients, events: list[Event], runs: int, warmup: int) -> dict:
    """Sequential executions, warm, cycling through ``events``: end-to-end and server-side."""
    machine = state_machine_arn(clients, "image_workflow")
    keys = []
    for event in events[: warmup + runs]:
        key = f"{config.UPLOAD_PREFIX}{BENCH_PREFIX}{event.name}"
        clients.s3.put_object(Bucket=config.BUCKET, Key=key, Body=event.body)
        keys.append(key)
    client_ms, server_ms, outcomes = [], [], Counter()
    shortest_s = 0.0  # the shortest run so far inside Step Functions (warm-up runs included)
    for i in range(warmup + runs):
        began = time.perf_counter()
        arn = start(clients, machine, image_input(config.BUCKET, keys[i % len(keys)]))
        first_poll_s = FIRST_POLL_SHARE * shortest_s
        described = wait(clients, arn, 60, max_poll_s=BENCH_POLL_S, first_poll_s=first_poll_s)
        elapsed = (time.perf_counter() - began) * 1000
        if described.get("stopDate"):
            took_s = (described["stopDate"] - described["startDate"]).total_seconds()
            shortest_s = min(shortest_s, took_s) if shortest_s else took_s
        if i < warmup:
            continue
        client_ms.append(elapsed)
        outcomes[outcome_of(described["status"], described.get("error"))] += 1
        if described.get("stopDate"):
            server_ms.append(took_s * 1000)
    return {
        "p50_ms": round(_percentile(client_ms, 50), 1),
        "p95_ms": round(_percentile(client_ms, 95), 1),
        "server_p50_ms": round(_percentile(server_ms, 50), 1),
        "server_p95_ms": round(_percentile(server_ms, 95), 1),
        "latency_runs": runs,
        "latency_outcomes": dict(outcomes),
    }


def _ours(clients: Clients, machine: str, since: datetime, status: str = "") -> list[dict]:
    """Executions of ``machine`` started at or after ``since`` (newest first: stop paging at
    the first older one, so a long-lived stack's history is not listed on every poll);
    ``status``: only those (the emulator then builds items for those alone)."""
    for attempt in range(LIST_RETRIES):
        try:
            return _list_since(clients, machine, since, status)
        except ClientError as err:
            # LocalStack's ListExecutions iterates the executions while StartExecution adds to
            # them: "OrderedDict mutated during iteration" (InternalError) under load. Again.
            if err.response["Error"]["Code"] != "InternalError" or attempt == LIST_RETRIES - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def _list_since(clients: Clients, machine: str, since: datetime, status: str) -> list[dict]:
    found: list[dict] = []
    for page in clients.sfn.get_paginator("list_executions").paginate(
        stateMachineArn=machine,
        PaginationConfig={"PageSize": 1000},
        **({"statusFilter": status} if status else {}),
    ):
        fresh = [e for e in page["executions"] if e["startDate"] >= since]
        found += fresh
        if len(fresh) < len(page["executions"]):
            break
    return found


def windows(since: datetime, stops: list[datetime], size: int) -> list[float]:
    """Executions/s in consecutive windows of ``size`` executions, in the order they ended
    (the first window from ``since``; a last partial window is left out)."""
    rates, previous = [], since
    ordered = sorted(stops)
    for end in range(size, len(ordered) + 1, size):
        span = (ordered[end - 1] - previous).total_seconds()
        rates.append(round(size / span, 2) if span > 0 else 0.0)
        previous = ordered[end - 1]
    return rates


def drift(rates: list[float]) -> float | None:
    """How much slower the last window ran than the first (0.1: 10 % fewer executions/s)."""
    if len(rates) < 2 or not rates[0]:
        return None
    return round(1 - rates[-1] / rates[0], 3)


def bench_throughput(
    clients: Clients,
    events: list[Event],
    timeout: float,
    upload_threads: int = 8,
    window: int = WINDOW,
) -> dict:
    """Upload every event under incoming/: each starts an execution through EventBridge.

    Each key ends in one outcome: succeeded, review, not_a_two_wheeler, failed (report's
    names), ``still_running`` (no end when the wait budget ran out; followed for GRACE_S more
    to classify it, but not counted in executions/s), ``not_sent`` (not uploaded when the
    budget ran out: uploads wait while MAX_IN_FLIGHT run) or ``lost`` (uploaded, no execution).
    """
    machine = state_machine_arn(clients, "image_workflow")
    cpu_before, bench_cpu_before = stack.cpu_snapshot(), _own_cpu_s()
    run_id = uuid.uuid4().hex[:8]
    prefix = f"{config.INCOMING_PREFIX}{BENCH_PREFIX}{run_id}/"
    keys = {f"{prefix}{i:05d}-{e.name}": e for i, e in enumerate(events)}
    started_wall = datetime.now(UTC)
    began = time.monotonic()

    gate = threading.Condition()
    flow: dict = {"uploaded": 0, "allowed": MAX_IN_FLIGHT, "stop": False, "error": None,
                  "last_upload": began}  # fmt: skip
    pending = iter(keys.items())
    sent: set[str] = set()  # keys whose upload S3 answered

    def uploader() -> None:
        while True:
            with gate:
                gate.wait_for(lambda: flow["uploaded"] < flow["allowed"] or flow["stop"])
                item = None if flow["stop"] else next(pending, None)
                if item is None:
                    return
                flow["uploaded"] += 1
            try:
                clients.s3.put_object(Bucket=config.BUCKET, Key=item[0], Body=item[1].body)
            except Exception as err:  # raised in the bench's thread, after the others stop
                with gate:
                    flow["error"], flow["stop"] = flow["error"] or err, True
                    gate.notify_all()
                return
            with gate:
                flow["last_upload"] = time.monotonic()
                sent.add(item[0])

    clients.s3  # noqa: B018 -- create the client before the threads share it
    uploaders = [threading.Thread(target=uploader, daemon=True) for _ in range(upload_threads)]
    for thread in uploaders:
        thread.start()

    def poll(until: float) -> list[dict]:
        last_progress, last_done, listed_at = time.monotonic(), -1, 0.0
        while True:
            running = len(_ours(clients, machine, started_wall, "RUNNING"))
            with gate:  # uploads go on while fewer than MAX_IN_FLIGHT run
                if flow["error"]:
                    raise flow["error"]
                flow["allowed"] = flow["uploaded"] - running + MAX_IN_FLIGHT
                expected = flow["uploaded"] if flow["stop"] else len(events)
                uploading = flow["uploaded"] < expected
                gate.notify_all()
            out_of_time = time.monotonic() > until
            if running == 0 or out_of_time or time.monotonic() - listed_at > FULL_LIST_S:
                executions = _ours(clients, machine, started_wall)
                listed_at = time.monotonic()
                done = sum(e["status"] in TERMINAL for e in executions)
                running = len(executions) - done
                if done >= expected and running == 0:
                    return executions
                if done != last_done:
                    last_progress, last_done = time.monotonic(), done
                # Stop at the deadline, or when nothing has finished for a while and nothing runs.
                idle = running == 0 and not uploading and time.monotonic() - last_progress > 15
                if out_of_time or idle:
                    return executions
            time.sleep(LIST_POLL_S)

    def stop_uploads() -> None:
        with gate:
            flow["stop"] = True
            gate.notify_all()

    try:
        executions = poll(began + timeout)
        stop_uploads()  # past the budget: what is not uploaded yet is not sent
        in_budget = {e["executionArn"] for e in executions if e["status"] in TERMINAL}
        if len(in_budget) < len(executions) or len(executions) < flow["uploaded"]:
            executions = poll(time.monotonic() + GRACE_S)
        cpu_after, bench_cpu_s = stack.cpu_snapshot(), _own_cpu_s() - bench_cpu_before
    finally:
        stop_uploads()
        for thread in uploaders:
            thread.join(timeout=60)
    elapsed_s = time.monotonic() - began
    upload_s = flow["last_upload"] - began

    def describe(arn: str) -> dict:
        return clients.sfn.describe_execution(executionArn=arn)

    with ThreadPoolExecutor(DESCRIBE_THREADS) as pool:
        described = list(pool.map(describe, [e["executionArn"] for e in executions]))
    by_key: dict[str, list[dict]] = {}
    for d in described:
        payload = json.loads(d.get("input") or "{}")
        key = payload.get("s3_key") or payload.get("detail", {}).get("object", {}).get("key")
        if key in keys:
            by_key.setdefault(key, []).append(d)
    outcomes: Counter = Counter()
    by_kind: dict[str, Counter] = {}
    still_running, last_stop, by_name = 0, None, {}
    for key, event in keys.items():
        runs = by_key.get(key, [])
        if not runs:
            outcome = "lost" if key in sent else "not_sent"
        else:
            d = runs[0]
            outcome = outcome_of(d["status"], d.get("error"))
            if d["executionArn"] not in in_budget:
                still_running += 1
            elif d.get("stopDate") and (last_stop is None or d["stopDate"] > last_stop):
                last_stop = d["stopDate"]
        outcomes[outcome] += 1
        by_name[event.name] = outcome
        by_kind.setdefault(event.kind, Counter())[outcome] += 1
    finished = sum(1 for d in described if d["executionArn"] in in_budget)
    stops = [d["stopDate"] for d in described if d["executionArn"] in in_budget]
    rates = windows(started_wall, [s for s in stops if s], window)
    span_s = (last_stop - started_wall).total_seconds() if last_stop else elapsed_s
    _delete_prefix(clients, config.BUCKET, prefix)  # bench objects are not data
    return {
        "events": len(events),
        "outcomes": dict(outcomes),
        "outcomes_by_kind": {k: dict(v) for k, v in by_kind.items()},
        "still_running": still_running,
        "not_sent": outcomes["not_sent"],
        "lost": outcomes["lost"],
        "duplicates": sum(len(r) - 1 for r in by_key.values()),
        "executions_per_s": round(finished / span_s, 2) if span_s > 0 else 0.0,
        "window": window,
        "windows_per_s": rates,
        "drift": drift(rates),
        **cpu_figures(
            cpu_before, cpu_after, bench_cpu_s, sum(e["status"] in TERMINAL for e in executions)
        ),
        "upload_s": round(upload_s, 2),
        "span_s": round(span_s, 2),
        "outcome_by_name": by_name,  # the warm-up's calibration for --path; not printed
    }


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def cpu_figures(
    before: stack.CpuSnapshot | None,
    after: stack.CpuSnapshot | None,
    bench_s: float,
    executions: int,
) -> dict:
    """CPU ms per ended execution, per process (the stack's host processes and this bench),
    and the executions/s that CPU allows: with every core busy (``all_cores``), and with the
    emulator alone on one core (``emulator_one_core``: one Python process, so one GIL). Both
    None when the stack is not host processes here (compose, the cloud) or nothing ended;
    the model, the total and ``all_cores`` None when the model server is not this stack's."""
    if before is None or after is None or executions <= 0:
        return {"cpu_ms_per_execution": None, "cpu_bound_per_s": None}
    seconds = {**after.since(before), "bench": bench_s}
    known = None not in seconds.values()
    per = {p: None if s is None else round(s * 1000 / executions, 1) for p, s in seconds.items()}
    per["total"] = round(sum(seconds.values()) * 1000 / executions, 1) if known else None
    cores = len(os.sched_getaffinity(0))

    def bound(ms: float | None, cores: int) -> float | None:
        return round(cores * 1000 / ms, 1) if ms else None

    return {
        "cpu_ms_per_execution": per,
        "cpu_bound_per_s": {
            "cores": cores,
            "all_cores": bound(per["total"], cores),
            "emulator_one_core": bound(per["emulator"], 1),
        },
    }


def _delete_prefix(clients: Clients, bucket: str, prefix: str) -> None:
    for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objects:
            clients.s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


def _by_outcome(images: list[Event], calibration: dict) -> dict[str, list[Event]]:
    """The test images grouped by the outcome each had in the warm-up (the model decides)."""
    groups: dict[str, list[Event]] = {}
    for event in images:
        outcome = calibration.get(event.name)
        if outcome:
            groups.setdefault(outcome, []).append(event)
    return groups


def bench_workflow(
    smoke: bool = False,
    events: int | None = None,
    warmup_events: int | None = None,
    data: Path | None = None,
    path: str = "mix",
    seed: int = 0,
    window: int | None = None,
) -> dict:
    """A warm-up burst, warm single-image latency, then sustained executions/s over S3 events.

    The warm-up runs the test split's images through the same path (the first burst after
    ``scones up`` also starts dozens of Lambda runtimes); it is reported apart and tells which
    images succeed and which go to review, for ``path`` success or review.
    """
    from scones.deploy import deploy

    _check(path, window)
    data = Path(data) if data else default_dataset()
    images = test_split(data)  # before deploying: a missing dataset is a quick, named error
    began = time.monotonic()
    load_before = os.getloadavg()
    deploy()
    clients = Clients()
    runs, latency_warmup = (5, 2) if smoke else (30, 5)
    events = events or (40 if smoke else 1000)
    window = window or (10 if smoke else WINDOW)
    if warmup_events is None:
        warmup_events = 10 if smoke else len(images)
    result: dict = {
        "smoke": smoke,
        "path": path,
        "data": str(data),
        "target": config.TARGET,
        "speedups": os.environ.get("SCONES_EMULATOR_SPEEDUPS", "1") != "0",
    }
    chosen = images
    if warmup_events:
        warm = [images[i % len(images)] for i in range(warmup_events)]
        first = bench_throughput(clients, warm, timeout=60 if smoke else 600)
        calibration = first["outcome_by_name"]
        result["warmup_events"] = first["events"]
        result["warmup_outcomes"] = first["outcomes"]
        result["warmup_executions_per_s"] = first["executions_per_s"]
        if path != "mix":
            chosen = _by_outcome(images, calibration).get(PATH_OUTCOME[path], [])
    elif path != "mix":
        raise BenchUsageError(f"--path {path} needs a warm-up to learn which images take that path")
    if not chosen:
        raise BenchError(
            f"no test image took the {path} path in the warm-up ({result.get('warmup_outcomes')})"
        )
    measured = (
        mix(chosen, bad_inputs(clients), events, seed)
        if path == "mix"
        else [chosen[i % len(chosen)] for i in range(events)]
    )
    result.update(bench_latency(clients, measured, runs, latency_warmup))
    # a long run gets the time it needs: 900 s per 1,000 events, as the default run
    timeout = 60 if smoke else 900 * max(1, len(measured) / 1000)
    figures = bench_throughput(clients, measured, timeout=timeout, window=window)
    figures.pop("outcome_by_name")
    result.update(figures)
    result["total_s"] = round(time.monotonic() - began, 1)
    result["loadavg"] = [round(x, 2) for x in (*load_before, *os.getloadavg())]
    return result


def _check(path: str, window: int | None) -> None:
    if path not in PATHS:
        raise BenchUsageError(f"--path must be one of {', '.join(PATHS)}, got {path!r}")
    if window is not None and window < 1:
        raise BenchUsageError(f"--window must be at least 1, got {window}")


def second_stack(variant: str, args: list[str], timeout: float, show: Show = QUIET) -> dict:
    """The same bench on a second emulator with ``VARIANTS[variant]``: own port and state dir,
    the same model server; started, benched and stopped by child processes. ``show`` is
    told each step."""
    from scones.stack import free_port

    config.STATE_DIR.mkdir(parents=True, exist_ok=True)
    state = tempfile.mkdtemp(prefix=f"bench-{variant}-", dir=config.STATE_DIR)
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env.update(
        SCONES_STATE_DIR=state,
        SCONES_EMULATOR_PORT=str(free_port(config.EMULATOR_HOST)),
        SCONES_MODEL_PORT=str(config.MODEL_PORT),
        # the same emulator install (else it defaults to one under the fresh state dir)
        SCONES_EMULATOR_VENV=str(config.EMULATOR_VENV),
        # a fresh state dir is a cold start (empty cache): minutes on a busy machine
        SCONES_EMULATOR_START_TIMEOUT=str(max(config.EMULATOR_START_TIMEOUT, SECOND_START_S)),
        **VARIANTS[variant],
    )
    scones = [sys.executable, "-m", "scones"]
    try:
        show.say(f"{variant}: starting a second emulator ...")
        up = subprocess.run(
            [*scones, "up", "--only", "emulator"], env=env, capture_output=True, text=True
        )
        if up.returncode:
            raise BenchError(f"{variant}: the second emulator did not start: {up.stderr[-800:]}")
        show.say(f"{variant}: the same bench on it ...")
        done = subprocess.run(
            [*scones, "bench", "workflow", "--json", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            raise BenchError(f"{variant}: the bench failed there: {done.stderr[-800:]}")
        return json.loads(done.stdout)
    finally:
        subprocess.run([*scones, "down"], env=env, capture_output=True)
        shutil.rmtree(state, ignore_errors=True)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def bench_with_second_stacks(
    smoke: bool,
    events: int | None,
    warmup_events: int | None,
    data: Path | None,
    path: str,
    seed: int,
    baseline: bool,
    no_persistence: bool,
    window: int | None = None,
    show: Show = QUIET,
) -> dict:
    """The bench, then (when asked) the same events on a stock stack and one without persistence.

    A second stack that fails is reported beside the figures already measured (its "error").
    """
    _check(path, window)
    data = data or default_dataset()
    show.say("benching this stack ...")
    result = bench_workflow(smoke, events, warmup_events, data, path, seed, window)
    args = ["--data", str(data), "--path", path, "--seed", str(seed)]
    args += ["--events", str(result["events"]), "--window", str(result["window"])]
    args += ["--warmup-events", str(result.get("warmup_events", 0))]
    args += ["--smoke"] if smoke else []
    timeout = 900 if smoke else 3600 * max(1, result["events"] / 1000)
    # a second stack that fails is reported beside the figures already measured
    for wanted, variant, ratio in (
        (baseline, "stock", "ratio_vs_stock"),
        (no_persistence, "no_persistence", "persistence_cost"),
    ):
        if not wanted:
            continue
        try:
            other = result[variant] = second_stack(variant, args, timeout, show)
        except BenchError as err:
            result[variant], result[ratio] = {"error": str(err)}, None
            continue
        if variant == "stock":
            result[ratio] = _ratio(result["executions_per_s"], other["executions_per_s"])
        else:
            mine, theirs = result["executions_per_s"], other["executions_per_s"]
            result[ratio] = round(1 - mine / theirs, 3) if theirs else None
    return result
