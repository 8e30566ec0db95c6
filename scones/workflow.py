"""`scones run`, `scones batch`, `scones bench workflow`: start the workflow, wait, report."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

from scones import PROJECT_ROOT, SconesError, config
from scones.deploy import Clients, names

LOG = logging.getLogger(__name__)
OUT = Console(stderr=True)

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
SHARED_TEST = PROJECT_ROOT.parent / "shared" / "data" / "cifar100-scones" / "test"
POLL_FIRST_S = 0.005  # the first polls are quick: a warm run takes a few hundred ms
POLL_MAX_S = 0.25
BENCH_PREFIX = "bench/"
BENCH_POLL_S = 0.01  # latency runs poll this often: the figure is the workflow's, not our polling


class WorkflowError(SconesError):
    """The workflow could not be started or did not finish."""


class NotDeployed(WorkflowError):
    """The state machine does not exist on the target."""


@dataclass
class RunOutcome:
    """One image's execution: how it ended and, if confident, where the item goes."""

    status: str
    execution_arn: str
    s3_uri: str
    label: str | None = None
    confidence: float | None = None
    loading_bay: str | None = None
    inferences: list[float] | None = None
    error: str | None = None
    cause: str | None = None
    seconds: float = 0.0


@dataclass
class BatchOutcome:
    """A batch execution: its status and the summary (counts per outcome and label)."""

    status: str
    execution_arn: str
    s3_uri: str
    summary: dict = field(default_factory=dict)
    error: str | None = None
    cause: str | None = None
    seconds: float = 0.0


# ------------------------------ Helpers ------------------------------


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key)."""
    if not uri.startswith("s3://"):
        raise WorkflowError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise WorkflowError(f"{uri!r} names no bucket; use s3://bucket/key")
    return bucket, key


def state_machine_arn(clients: Clients, key: str) -> str:
    """The deployed state machine's ARN; NotDeployed if `scones deploy` has not run."""
    arn = clients.arn("states", f"stateMachine:{names().state_machine(key)}")
    try:
        clients.sfn.describe_state_machine(stateMachineArn=arn)
    except clients.sfn.exceptions.StateMachineDoesNotExist as err:
        raise NotDeployed(f"{arn} does not exist; run `scones deploy` first") from err
    return arn


def upload_image(clients: Clients, path: Path) -> tuple[str, str]:
    """Put a local file under SCONES_UPLOAD_PREFIX (no event rule there); returns bucket, key.

    The key holds the content's hash: uploading the same image again overwrites, not piles up.
    """
    if not path.is_file():
        raise WorkflowError(f"{path} is not a file; pass an image path or s3://bucket/key")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    key = f"{config.UPLOAD_PREFIX}{digest}/{path.name}"
    clients.s3.put_object(Bucket=config.BUCKET, Key=key, Body=data)
    return config.BUCKET, key


def start(clients: Clients, machine_arn: str, payload: dict, name: str | None = None) -> str:
    kwargs = {"name": name} if name else {}
    return clients.sfn.start_execution(
        stateMachineArn=machine_arn, input=json.dumps(payload), **kwargs
    )["executionArn"]


def wait(
    clients: Clients, execution_arn: str, timeout: float, max_poll_s: float = POLL_MAX_S
) -> dict:
    """DescribeExecution once the execution has ended; WorkflowError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    delay = min(POLL_FIRST_S, max_poll_s)
    while True:
        described = clients.sfn.describe_execution(executionArn=execution_arn)
        if described["status"] in TERMINAL:
            return described
        if time.monotonic() > deadline:
            raise WorkflowError(
                f"{execution_arn} still {described['status']} after {timeout:.0f} s "
                "(SCONES_RUN_TIMEOUT); see its history with `aws stepfunctions "
                "get-execution-history`"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, max_poll_s)


def _check_bucket(bucket: str) -> None:
    if bucket != config.BUCKET and config.TARGET != "local":
        # The deployed roles may read SCONES_BUCKET only; elsewhere AWS answers AccessDenied.
        LOG.warning(
            "s3://%s is not SCONES_BUCKET (%s): the workflow's roles cannot read it",
            bucket,
            config.BUCKET,
        )


def image_input(bucket: str, key: str) -> dict:
    """The course's event for the image workflow."""
    return {"image_data": "", "s3_bucket": bucket, "s3_key": key, "inferences": []}


# ------------------------------ run / batch ------------------------------


def run_image(
    source: str, timeout: float | None = None, clients: Clients | None = None
) -> RunOutcome:
    """Classify one image (a local path, uploaded first, or s3://bucket/key) and wait."""
    clients = clients or Clients()
    machine = state_machine_arn(clients, "image_workflow")
    if source.startswith("s3://"):
        bucket, key = parse_s3_uri(source)
        _check_bucket(bucket)
    else:
        bucket, key = upload_image(clients, Path(source).expanduser())
    began = time.monotonic()
    arn = start(clients, machine, image_input(bucket, key))
    described = wait(clients, arn, timeout or config.RUN_TIMEOUT)
    outcome = RunOutcome(
        status=described["status"],
        execution_arn=arn,
        s3_uri=f"s3://{bucket}/{key}",
        error=described.get("error"),
        cause=described.get("cause"),
        seconds=round(time.monotonic() - began, 3),
    )
    if described["status"] == "SUCCEEDED":
        output = json.loads(described.get("output") or "{}")
        outcome.label = output.get("label")
        outcome.confidence = output.get("confidence")
        outcome.loading_bay = output.get("loading_bay")
        outcome.inferences = output.get("inferences")
    return outcome


def run_batch(
    uri: str, timeout: float | None = None, clients: Clients | None = None
) -> BatchOutcome:
    """Classify every object under s3://bucket/prefix with the batch workflow and wait."""
    clients = clients or Clients()
    machine = state_machine_arn(clients, "batch_workflow")
    bucket, prefix = parse_s3_uri(uri)
    _check_bucket(bucket)
    listed = clients.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    if not listed.get("KeyCount"):  # the Map's ItemReader fails on an empty listing
        raise WorkflowError(f"nothing under {uri}; upload images there first")
    began = time.monotonic()
    arn = start(clients, machine, {"s3_bucket": bucket, "prefix": prefix})
    described = wait(clients, arn, timeout or config.RUN_TIMEOUT)
    outcome = BatchOutcome(
        status=described["status"],
        execution_arn=arn,
        s3_uri=uri,
        error=described.get("error"),
        cause=described.get("cause"),
        seconds=round(time.monotonic() - began, 3),
    )
    if described["status"] == "SUCCEEDED":
        outcome.summary = json.loads(described.get("output") or "{}")
    return outcome


# ------------------------------ bench ------------------------------


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


# ------------------------------ Commands ------------------------------


def _print_run(outcome: RunOutcome) -> None:
    if outcome.status == "SUCCEEDED":
        OUT.print(
            f"[green]{outcome.status}[/green] {outcome.s3_uri}: {outcome.label} "
            f"({outcome.confidence:.3f}) -> {outcome.loading_bay}  [{outcome.seconds:.2f} s]"
        )
    else:
        OUT.print(
            f"[red]{outcome.status}[/red] {outcome.s3_uri}: {outcome.error}  "
            f"[{outcome.seconds:.2f} s]"
        )
        if outcome.cause:
            OUT.print(f"  cause: {outcome.cause[:300]}", markup=False)
    OUT.print(f"  execution: {outcome.execution_arn}", markup=False)


def register(app: typer.Typer) -> None:
    """Add run, batch and bench workflow to the CLI."""

    @app.command("run")
    def run_cmd(
        source: str = typer.Argument(
            None, help="An image file (uploaded first) or s3://bucket/key."
        ),
        state_machine: str = typer.Option(
            None,
            "--state-machine",
            help="Run this (imported) state machine instead, like the console.",
        ),
        input_path: str = typer.Option(
            None, "--input", help="With --state-machine: the input, a JSON file or JSON text."
        ),
        as_json: bool = typer.Option(
            False, "--json", help="Print JSON (raw history with --state-machine)."
        ),
        timeout: float = typer.Option(None, help="Seconds to wait (default SCONES_RUN_TIMEOUT)."),
    ) -> None:
        """Classify one image with the workflow, or run any state machine with --state-machine.

        Prints the outcome; exits 1 unless the execution SUCCEEDED.
        """
        if state_machine:
            from scones import byo  # the console-style printer for any state machine

            raise typer.Exit(byo.run_command(state_machine, input_path or "{}", as_json, timeout))
        if not source:
            raise WorkflowError("give an image (PATH or s3://bucket/key) or --state-machine NAME")
        outcome = run_image(source, timeout)
        if as_json:
            print(json.dumps(asdict(outcome), indent=2))
        else:
            _print_run(outcome)
        if outcome.status != "SUCCEEDED":
            raise typer.Exit(1)

    @app.command("batch")
    def batch_cmd(
        uri: str = typer.Argument(..., help="s3://bucket/prefix: every object under it."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON (items included)."),
        timeout: float = typer.Option(None, help="Seconds to wait (default SCONES_RUN_TIMEOUT)."),
    ) -> None:
        """Classify every image under an S3 prefix; print counts per outcome and label."""
        outcome = run_batch(uri, timeout)
        if as_json:
            print(json.dumps(asdict(outcome), indent=2))
        elif outcome.status == "SUCCEEDED":
            s = outcome.summary
            OUT.print(
                f"[green]SUCCEEDED[/green] {uri}: {s.get('total')} items in {outcome.seconds:.1f} s"
            )
            OUT.print(f"  outcomes: {s.get('outcomes')}", markup=False)
            OUT.print(f"  labels:   {s.get('labels')}", markup=False)
            if s.get("errors"):
                OUT.print(f"  errors:   {s.get('errors')}", markup=False)
        else:
            OUT.print(f"[red]{outcome.status}[/red] {uri}: {outcome.error} {outcome.cause or ''}")
        if outcome.status != "SUCCEEDED":
            raise typer.Exit(1)


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
