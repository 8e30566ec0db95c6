"""`scones bench workflow`: warm latency and sustained executions/s over many S3 events."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import typer
from rich.console import Console

from scones import PROJECT_ROOT, config
from scones.deploy import Clients
from scones.workflow import TERMINAL, image_input, start, state_machine_arn, wait

OUT = Console(stderr=True)

SHARED_TEST = PROJECT_ROOT.parent / "shared" / "data" / "cifar100-scones" / "test"
BENCH_PREFIX = "bench/"
BENCH_POLL_S = 0.01  # latency runs poll this often: the figure is the workflow's, not our polling


def _bench_image() -> tuple[str, bytes]:
    """A real test image if the shared data is there, else a small synthetic PNG."""
    lst = SHARED_TEST.parent / "test.lst"
    if lst.exists():
        first = lst.read_text().splitlines()[0].split("\t")[-1]
        return first, (SHARED_TEST / first).read_bytes()
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, "PNG")
    return "synthetic.png", buffer.getvalue()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def bench_latency(clients: Clients, bucket: str, key: str, runs: int, warmup: int) -> dict:
    """Sequential single-image executions, warm: end-to-end and server-side latency."""
    machine = state_machine_arn(clients, "image_workflow")
    client_ms, server_ms, statuses = [], [], []
    for i in range(warmup + runs):
        began = time.perf_counter()
        arn = start(clients, machine, image_input(bucket, key))
        described = wait(clients, arn, 60, max_poll_s=BENCH_POLL_S)
        elapsed = (time.perf_counter() - began) * 1000
        if i < warmup:
            continue
        client_ms.append(elapsed)
        statuses.append(described["status"])
        if described.get("stopDate"):
            delta = described["stopDate"] - described["startDate"]
            server_ms.append(delta.total_seconds() * 1000)
    return {
        "p50_ms": round(_percentile(client_ms, 50), 1),
        "p95_ms": round(_percentile(client_ms, 95), 1),
        "server_p50_ms": round(_percentile(server_ms, 50), 1),
        "server_p95_ms": round(_percentile(server_ms, 95), 1),
        "latency_runs": runs,
        "latency_statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
    }


def bench_throughput(
    clients: Clients, image: bytes, events: int, timeout: float, upload_threads: int = 8
) -> dict:
    """Upload ``events`` objects under incoming/: each starts an execution through EventBridge.

    Counts, per uploaded key, the executions that reached a terminal state; ``unaccounted``
    is the number of keys with none (lost events or executions still running at the timeout).
    """
    machine = state_machine_arn(clients, "image_workflow")
    run_id = uuid.uuid4().hex[:8]
    prefix = f"{config.INCOMING_PREFIX}{BENCH_PREFIX}{run_id}/"
    keys = [f"{prefix}{i:05d}.png" for i in range(events)]
    started_wall = datetime.now(UTC)
    began = time.monotonic()

    def put(key: str) -> None:
        clients.s3.put_object(Bucket=config.BUCKET, Key=key, Body=image)

    clients.s3  # noqa: B018 -- create the client before the threads share it
    with ThreadPoolExecutor(upload_threads) as pool:
        list(pool.map(put, keys))
    upload_s = time.monotonic() - began

    def ours() -> list[dict]:
        found = []
        for page in clients.sfn.get_paginator("list_executions").paginate(
            stateMachineArn=machine, PaginationConfig={"PageSize": 1000}
        ):
            found += [e for e in page["executions"] if e["startDate"] >= started_wall]
        return found

    deadline = began + timeout
    last_progress, last_done = time.monotonic(), -1
    while True:
        executions = ours()
        done = sum(e["status"] in TERMINAL for e in executions)
        running = len(executions) - done
        if done >= events and running == 0:
            break
        if done != last_done:
            last_progress, last_done = time.monotonic(), done
        # Stop at the deadline, or when nothing has finished for a while and nothing runs.
        if time.monotonic() > deadline or (running == 0 and time.monotonic() - last_progress > 15):
            break
        time.sleep(0.5)
    elapsed_s = time.monotonic() - began

    # Map executions to keys by their input (other executions may run meanwhile).
    by_key: dict[str, list[str]] = {}
    last_stop = None
    for e in executions:
        described = clients.sfn.describe_execution(executionArn=e["executionArn"])
        payload = json.loads(described.get("input") or "{}")
        key = payload.get("s3_key") or payload.get("detail", {}).get("object", {}).get("key")
        if not key or not key.startswith(prefix):
            continue
        by_key.setdefault(key, []).append(described["status"])
        if described.get("stopDate") and (last_stop is None or described["stopDate"] > last_stop):
            last_stop = described["stopDate"]
    terminal = {k for k, st in by_key.items() if any(s in TERMINAL for s in st)}
    statuses: dict[str, int] = {}
    for st in by_key.values():
        for s in st:
            statuses[s] = statuses.get(s, 0) + 1
    span_s = (last_stop - started_wall).total_seconds() if last_stop else elapsed_s
    _delete_prefix(clients, config.BUCKET, prefix)  # bench objects are not data
    return {
        "events": events,
        "terminal": len(terminal),
        "unaccounted": events - len(terminal),
        "duplicates": sum(len(st) - 1 for st in by_key.values()),
        "statuses": statuses,
        "executions_per_s": round(len(terminal) / span_s, 2) if span_s > 0 else 0.0,
        "upload_s": round(upload_s, 2),
        "span_s": round(span_s, 2),
    }


def _delete_prefix(clients: Clients, bucket: str, prefix: str) -> None:
    for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objects:
            clients.s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


def bench_workflow(
    smoke: bool = False, events: int | None = None, warmup_events: int | None = None
) -> dict:
    """Warm single-image latency, then sustained executions/s over many S3 events.

    A warm-up burst of events runs first, through the same path, and is reported apart: the
    first burst after ``scones up`` also pays for starting the Lambda environments (dozens of
    runtime processes), which a sustained load has already paid for.
    """
    from scones.deploy import deploy

    began = time.monotonic()
    deploy()
    clients = Clients()
    name, image = _bench_image()
    key = f"{config.UPLOAD_PREFIX}{BENCH_PREFIX}{name}"
    clients.s3.put_object(Bucket=config.BUCKET, Key=key, Body=image)
    runs, warmup = (5, 2) if smoke else (30, 5)
    events = events or (40 if smoke else 1000)
    warmup_events = (10 if smoke else 300) if warmup_events is None else warmup_events
    result = {"smoke": smoke, "image": name, "target": config.TARGET}
    result.update(bench_latency(clients, config.BUCKET, key, runs, warmup))
    if warmup_events:
        first = bench_throughput(clients, image, warmup_events, timeout=40 if smoke else 600)
        result.update({f"warmup_{k}": first[k] for k in ("events", "unaccounted")})
        result["warmup_executions_per_s"] = first["executions_per_s"]
    result.update(bench_throughput(clients, image, events, timeout=40 if smoke else 900))
    result["total_s"] = round(time.monotonic() - began, 1)
    return result


def register_bench(bench: typer.Typer) -> None:
    """Add `scones bench workflow`."""

    @bench.command("workflow")
    def bench_workflow_cmd(
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        smoke: bool = typer.Option(False, "--smoke", help="A quick run (< 60 s), fewer events."),
        events: int = typer.Option(None, help="S3 events for the throughput part (default 1000)."),
        warmup_events: int = typer.Option(
            None, help="S3 events run first and reported apart (default 300; 0: none)."
        ),
    ) -> None:
        """Workflow latency (p50/p95, warm) and executions/s over >= 1,000 S3 events."""
        result = bench_workflow(smoke, events, warmup_events)
        if as_json:
            print(json.dumps(result, indent=2))
            return
        OUT.print(
            f"latency (warm, {result['latency_runs']} runs): p50 {result['p50_ms']} ms, "
            f"p95 {result['p95_ms']} ms (server-side p50 {result['server_p50_ms']} ms)"
        )
        if "warmup_events" in result:
            OUT.print(
                f"warm-up: {result['warmup_executions_per_s']} executions/s over "
                f"{result['warmup_events']} events; unaccounted {result['warmup_unaccounted']}"
            )
        OUT.print(
            f"throughput: {result['executions_per_s']} executions/s over "
            f"{result['events']} events; unaccounted {result['unaccounted']}, "
            f"statuses {result['statuses']}"
        )
