"""`scones load`: a bounded stream or burst of images through the image workflow, all accounted for.

Good inputs are the staged test images (their S3 keys, nothing copied); a configurable share is
bad: files that are not images, a truncated PNG, vehicles the model was not trained on, and keys
that do not exist. Every execution is started with a name of this run, so the closing summary can
DescribeExecution each one: `unaccounted` counts those with no terminal state by the deadline.
"""

from __future__ import annotations

import io
import json
import logging
import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

from scones import QUIET, SconesError, Show, UsageError, config
from scones.aws import Clients
from scones.deploy import class_names
from scones.executions import (
    TERMINAL,
    ExecutionEnd,
    execution_arn,
    image_input,
    list_executions,
    outcome_of,
)
from scones.report import ground_truth, image_machine_arn

LOG = logging.getLogger(__name__)

KINDS = ("image", "not_image", "other_vehicle", "missing")
BAD_KINDS = KINDS[1:]
SAMPLES_PREFIX = "load/samples/"  # the synthetic bad inputs, uploaded once (same bytes, same keys)
MISSING_PREFIX = "load/missing/"  # never written: these keys must fail with ImageNotFound
DEFAULT_DATASET = "bicycle-motorcycle"
MAX_EXECUTIONS = 20_000  # one run's bound, whatever --rate x --duration asks
START_THREADS = 8  # StartExecution calls in flight; the emulator, not us, is the bottleneck
POLL_S = 1.0
WAIT_BASE_S = 60.0  # default wait after the last start: this plus WAIT_PER_EXECUTION_S each
WAIT_PER_EXECUTION_S = 0.8  # ~2.5-5 executions/s here; 0.8 s each leaves room for a slow box
START_RETRY_S = 120.0  # StartExecution is retried this long while the emulator cannot be reached


class LoadError(SconesError):
    """The load cannot run: no staged images, no workflow, or bad arguments."""


class LoadUsageError(LoadError, UsageError):
    """Bad options: the load was asked for something it cannot send (exit code 2)."""


# ------------------------------ Inputs ------------------------------


@dataclass(frozen=True)
class LoadItem:
    """One input: which kind, the S3 key the execution reads, its true class when known."""

    kind: str
    s3_key: str
    truth: str | None = None


def staged_images(
    c, dataset: str = DEFAULT_DATASET, split: str = "test", bucket: str | None = None
) -> list[LoadItem]:
    """The staged images of one split, from the dataset's .lst in S3."""
    bucket = bucket or config.BUCKET
    prefix = f"datasets/{dataset}/{split}/"
    truth = {k: v for k, v in ground_truth(c, bucket).items() if k.startswith(prefix)}
    if not truth:
        raise LoadError(
            f"no staged images at s3://{bucket}/{prefix}; run `scones stage` (or `scones demo`) "
            "first, or pick another --dataset"
        )
    return [LoadItem("image", key, name) for key, name in sorted(truth.items())]


def _png(pixels) -> bytes:
    from PIL import Image  # lazy: Pillow only for the bad samples; `scones --help` stays light

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def synthetic_vehicles(count: int = 6, seed: int = 0) -> list[tuple[str, bytes]]:
    """32x32 drawings of vehicles the model does not know (bus, tram, truck, rocket ...)."""
    from PIL import Image, ImageDraw  # lazy: as in _png

    rng = random.Random(seed)
    shapes = ["bus", "streetcar", "pickup_truck", "rocket", "tractor", "tank"]
    images = []
    for i in range(count):
        kind = shapes[i % len(shapes)]
        sky = tuple(rng.randrange(120, 230) for _ in range(3))
        im = Image.new("RGB", (32, 32), sky)
        d = ImageDraw.Draw(im)
        body = tuple(rng.randrange(0, 255) for _ in range(3))
        if kind == "rocket":
            d.polygon([(16, 2), (22, 12), (22, 26), (10, 26), (10, 12)], fill=body)
            d.polygon([(10, 26), (6, 31), (26, 31), (22, 26)], fill=(200, 40, 30))
        else:
            top = 8 if kind in ("bus", "streetcar") else 14
            d.rectangle([2, top, 29, 24], fill=body)
            for x in range(4, 27, 6):  # windows
                d.rectangle([x, top + 2, x + 3, top + 6], fill=(180, 220, 250))
            for x in (8, 23):  # wheels
                d.ellipse([x - 4, 21, x + 4, 29], fill=(20, 20, 20))
            if kind == "streetcar":
                d.line([16, 0, 16, top], fill=(40, 40, 40))
        noise = np.asarray(im, dtype=np.int16) + np.random.default_rng(seed + i).integers(
            -12, 13, (32, 32, 3)
        )
        images.append((f"{kind}-{i}.png", _png(noise.clip(0, 255).astype("uint8"))))
    return images


def bad_samples(
    c,
    classes: list[str],
    bucket: str | None = None,
) -> dict[str, list[LoadItem]]:
    """Upload (idempotently) and return the bad inputs, by kind (missing keys are per run)."""
    bucket = bucket or config.BUCKET
    good_png = _png(np.full((32, 32, 3), 128, dtype=np.uint8))
    samples = {
        "not_image": [
            ("not-an-image.txt", b"scones: this is a text file, not an image\n"),
            ("text-named.png", b"%PDF-1.4 a document with an image's name\n"),
            ("truncated.png", good_png[: len(good_png) // 2]),  # PNG magic, broken body
        ],
        "other_vehicle": [],
    }
    items: dict[str, list[LoadItem]] = {"not_image": [], "other_vehicle": [], "missing": []}
    # Other vehicles: staged images of classes the model lacks (e.g. `scones stage --classes
    # vehicles`), else drawings.
    for key, name in sorted(ground_truth(c, bucket).items()):
        if name not in classes and "/test/" in key and len(items["other_vehicle"]) < 50:
            items["other_vehicle"].append(LoadItem("other_vehicle", key, name))
    if not items["other_vehicle"]:
        samples["other_vehicle"] = synthetic_vehicles()
    for kind, files in samples.items():
        for filename, body in files:
            key = f"{SAMPLES_PREFIX}{kind}/{filename}"
            c.s3.put_object(Bucket=bucket, Key=key, Body=body)  # same bytes: no harm in repeating
            items[kind].append(LoadItem(kind, key, None))
    return items


def plan(
    count: int,
    good: list[LoadItem],
    bad: dict[str, list[LoadItem]],
    bad_share: float,
    seed: int,
    run_id: str,
) -> list[LoadItem]:
    """``count`` inputs: good ones cycled in a shuffled order, bad ones mixed in at bad_share."""
    rng = random.Random(seed)
    pool = list(good)
    rng.shuffle(pool)
    items: list[LoadItem] = []
    n_bad = round(count * bad_share)
    bad_slots = set(rng.sample(range(count), n_bad)) if n_bad else set()
    kinds = [k for k in BAD_KINDS if k == "missing" or bad.get(k)]
    g = 0
    for i in range(count):
        if i in bad_slots:
            kind = rng.choice(kinds)
            if kind == "missing":
                items.append(LoadItem("missing", f"{MISSING_PREFIX}{run_id}/{i:05d}.png"))
            else:
                items.append(rng.choice(bad[kind]))
        else:
            items.append(pool[g % len(pool)])
            g += 1
    return items


# ------------------------------ Running ------------------------------


@dataclass
class Tracked:
    """One execution this run started (or tried to)."""

    index: int
    item: LoadItem
    name: str
    arn: str | None = None
    start_error: str | None = None
    reused: bool = False  # ExecutionAlreadyExists: an earlier run of the same name
    status: str | None = None
    error: str | None = None
    label: str | None = None
    confidence: float | None = None

    @property
    def outcome(self) -> str:
        """executions.outcome_of's, with a load run's words: not started = failed, not ended =
        unaccounted, review = reviewed."""
        if self.start_error:
            return "failed"
        if self.status not in TERMINAL:
            return "unaccounted"
        outcome = outcome_of(self.status, self.error)
        return "reviewed" if outcome == "review" else outcome


@dataclass
class LoadSummary:
    """The closing summary; `to_dict()` is the --json output."""

    run_id: str
    name_prefix: str
    mode: str
    sent: int = 0
    started: int = 0
    reused: int = 0
    succeeded: int = 0
    succeeded_by_label: dict[str, int] = field(default_factory=dict)
    reviewed: int = 0
    not_a_two_wheeler: int = 0  # in the review queue too: the model's unknown-image score
    failed: int = 0
    failed_by_error: dict[str, int] = field(default_factory=dict)
    unaccounted: int = 0
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    send_seconds: float = 0.0
    seconds: float = 0.0
    executions_per_s: float = 0.0
    started_at: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(tracked: list[Tracked], run_id: str, prefix: str, mode: str) -> LoadSummary:
    """Counts by outcome, label, error and input kind."""
    s = LoadSummary(run_id=run_id, name_prefix=prefix, mode=mode, sent=len(tracked))
    s.started = sum(1 for t in tracked if t.arn)
    s.reused = sum(1 for t in tracked if t.reused)
    outcomes = Counter(t.outcome for t in tracked)
    s.succeeded, s.reviewed = outcomes["succeeded"], outcomes["reviewed"]
    s.not_a_two_wheeler = outcomes["not_a_two_wheeler"]
    s.failed, s.unaccounted = outcomes["failed"], outcomes["unaccounted"]
    s.succeeded_by_label = dict(Counter(t.label for t in tracked if t.outcome == "succeeded"))
    s.failed_by_error = dict(
        Counter(t.start_error or t.error or t.status for t in tracked if t.outcome == "failed")
    )
    for t in tracked:
        kind = s.by_kind.setdefault(t.item.kind, {})
        key = (
            f"failed:{t.start_error or t.error or t.status}" if t.outcome == "failed" else t.outcome
        )
        kind[key] = kind.get(key, 0) + 1
    return s


class LoadRun:
    """Starts executions (at a rate, or all at once), follows them, accounts for each one."""

    def __init__(
        self,
        c,
        items: list[LoadItem],
        names: list[str],
        rate: float | None = None,
        threads: int = START_THREADS,
        bucket: str | None = None,
    ) -> None:
        self.c = c
        self.machine = image_machine_arn(c)
        self.bucket = bucket or config.BUCKET
        self.rate = rate
        self.threads = threads
        self.image_input = image_input
        self.tracked = [
            Tracked(i, item, name) for i, (item, name) in enumerate(zip(items, names, strict=True))
        ]
        self.lock = threading.Lock()
        self.sent = 0
        self.send_seconds = 0.0

    # -- starting --
    def _start(self, t: Tracked) -> None:
        payload = json.dumps(self.image_input(self.bucket, t.item.s3_key))
        deadline = time.monotonic() + START_RETRY_S
        backoff = 0.5
        while True:
            try:
                t.arn = self.c.sfn.start_execution(
                    stateMachineArn=self.machine, name=t.name, input=payload
                )["executionArn"]
            except self.c.sfn.exceptions.ExecutionAlreadyExists:
                # an earlier run, or our own try whose answer the outage lost
                t.arn, t.reused = execution_arn(self.machine, t.name), True
            except (EndpointConnectionError, ConnectionClosedError) as err:
                # the emulator is restarting: the name makes trying again safe
                if time.monotonic() < deadline:
                    time.sleep(random.uniform(0, backoff))
                    backoff = min(backoff * 2, 8.0)
                    continue
                t.start_error = "StartExecution:EndpointConnectionError"
                LOG.warning("cannot start %s: %s", t.name, err)
            except Exception as err:  # throttled, refused: counted, not hidden
                code = getattr(err, "response", {}).get("Error", {}).get("Code")
                t.start_error = f"StartExecution:{code or type(err).__name__}"
                LOG.warning("cannot start %s: %s", t.name, err)
            break
        with self.lock:
            self.sent += 1

    def send(self) -> None:
        """Start every execution; with a rate, the i-th starts i/rate s after the first."""
        began = time.monotonic()
        self.c.sfn  # noqa: B018 -- make the client before the threads share it
        with ThreadPoolExecutor(self.threads) as pool:
            for t in self.tracked:
                if self.rate:
                    delay = began + t.index / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                pool.submit(self._start, t)
        self.send_seconds = time.monotonic() - began

    # -- following --
    def _describe(self, t: Tracked) -> None:
        try:
            d = self.c.sfn.describe_execution(executionArn=t.arn)
        except Exception as err:  # a lost execution stays unaccounted
            LOG.warning("cannot describe %s: %s", t.arn, err)
            return
        end = ExecutionEnd.from_described(d)
        t.status, t.error, t.label, t.confidence = end.status, end.error, end.label, end.confidence

    def poll(self, prefix: str) -> None:
        """One round: ours not RUNNING any more get described once (ListExecutions is cheap)."""
        try:
            running = {
                e["executionArn"]
                for e in list_executions(self.c, self.machine, prefix, status="RUNNING")
            }
        except Exception as err:  # the emulator is restarting: ask again next round
            LOG.warning("cannot list executions (%s); retrying", err)
            return
        todo = [
            t for t in self.tracked if t.arn and t.status not in TERMINAL and t.arn not in running
        ]
        if todo:
            with ThreadPoolExecutor(self.threads) as pool:
                list(pool.map(self._describe, todo))

    def counts(self) -> Counter:
        return Counter(t.outcome for t in self.tracked[: self.sent])

    def run(self, prefix: str, wait_s: float, show: Show = QUIET) -> None:
        """Send, follow until every execution ended or ``wait_s`` after the last start, account.

        ``show.bar("load", total)`` is ticked each round with ``started``, ``finished`` and
        ``counts`` (outcome -> executions so far).
        """
        total = len(self.tracked)
        sender = threading.Thread(target=self.send, name="load-sender", daemon=True)
        with show.bar("load", total) as tick:
            sender.start()
            deadline = None
            while True:
                time.sleep(POLL_S)
                sending = sender.is_alive()
                if not sending and deadline is None:
                    deadline = time.monotonic() + wait_s
                self.poll(prefix)
                counts = self.counts()
                finished = sum(v for k, v in counts.items() if k != "unaccounted")
                tick(started=self.sent, finished=finished, counts=counts)
                if not sending and finished >= total:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    LOG.warning(
                        "%d executions of %s* still running after the %.0f s wait",
                        total - finished,
                        prefix,
                        wait_s,
                    )
                    break
        sender.join()
        # The check: DescribeExecution of every execution this run started.
        started = [t for t in self.tracked if t.arn]
        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(self._describe, started))


def new_run_id() -> str:
    """Sortable and unique: UTC time plus 4 random hex digits."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def run_load(
    count: int,
    rate: float | None = None,
    bad_share: float = 0.1,
    dataset: str = DEFAULT_DATASET,
    split: str = "test",
    seed: int = 0,
    wait_s: float | None = None,
    threads: int = START_THREADS,
    show: Show = QUIET,
    c=None,
) -> LoadSummary:
    """Send ``count`` executions (at ``rate`` per second, or all at once) and account for them."""
    if not 0 <= bad_share <= 1:
        raise LoadUsageError(f"--bad-share must be between 0 and 1, got {bad_share}")
    if not 1 <= count <= MAX_EXECUTIONS:
        raise LoadUsageError(f"a run sends 1 to {MAX_EXECUTIONS} executions, not {count}")
    c = c or Clients()
    began = time.monotonic()
    started_at = datetime.now(UTC).isoformat()
    good = staged_images(c, dataset, split)
    bad = bad_samples(c, class_names()) if bad_share > 0 else {}
    run_id = new_run_id()
    prefix = f"load-{run_id}-"
    items = plan(count, good, bad, bad_share, seed, run_id)
    names = [f"{prefix}{i:05d}" for i in range(count)]
    load = LoadRun(c, items, names, rate=rate, threads=threads)
    wait = WAIT_BASE_S + WAIT_PER_EXECUTION_S * count if wait_s is None else wait_s
    load.run(prefix, wait, show)
    mode = f"rate {rate:g}/s" if rate else "burst"
    summary = summarize(load.tracked, run_id, prefix, mode)
    summary.send_seconds = round(load.send_seconds, 2)
    summary.seconds = round(time.monotonic() - began, 2)
    finished = summary.sent - summary.unaccounted
    summary.executions_per_s = round(finished / summary.seconds, 2) if summary.seconds else 0.0
    summary.started_at = started_at
    return summary
