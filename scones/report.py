"""`scones report`: what the workflow did, from execution histories and the endpoint's data capture.

The same plain functions feed the Streamlit explorer: listing executions, reading one execution's
history state by state, reading Model Monitor capture files, the ground truth from the staged
.lst files, and the figures. Everything goes through boto3, so it works on the emulator and on AWS.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import logging
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from local_model import lst
from scones import SconesError, UsageError, config
from scones.aws import Clients, deployed_state_machine, names
from scones.executions import (
    OUTCOMES,
    ExecutionRecord,
    RecordCache,
    list_executions,
)

LOG = logging.getLogger(__name__)

DATASETS_PREFIX = "datasets/"  # where `scones stage` puts each dataset (datasets/<name>/)
LST_SPLITS = ("test", "validation", "train")
HISTORY_THREADS = 8  # GetExecutionHistory calls at once; more only queue at the emulator
THUMB_PX = 64  # thumbnails: CIFAR's 32 px doubled, still small in the page
MAX_THUMBS = 60  # per gallery: a long load run must not make a page of megabytes
MAX_TABLE_ROWS = 2000
CAPTURE_SLACK = timedelta(seconds=2)  # capture times have whole seconds


class ReportError(SconesError):
    """The report cannot be built: the workflow is missing or the target is unreachable."""


class ReportUsageError(ReportError, UsageError):
    """A bad option value, e.g. --since (exit code 2)."""


def redact(value: object, keep: int = 48) -> object:
    """The value with long base64 `image_data` strings shortened, for display."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "image_data" and isinstance(v, str) and len(v) > keep:
                out[k] = f"{v[:keep]}... ({len(v)} base64 chars)"
            else:
                out[k] = redact(v, keep)
        return out
    if isinstance(value, list):
        return [redact(v, keep) for v in value]
    return value


# ------------------------------ Reading the target ------------------------------


def clients() -> Clients:
    """boto3 clients for the current target (the emulator locally, AWS in cloud mode)."""
    return Clients()


def image_machine_arn(c: Clients) -> str:
    """The deployed image workflow's ARN; aws.NotDeployed if it is not deployed."""
    return deployed_state_machine(c, "image_workflow")


def collect(
    c=None,
    name_prefix: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    truth: dict[str, str] | None = None,
    cache: RecordCache | None = None,
) -> list[ExecutionRecord]:
    """Records of the image workflow's executions (newest first), with ground truth filled in."""
    c = c or clients()
    machine = image_machine_arn(c)
    summaries = list_executions(c, machine, name_prefix, since, limit=limit)
    cache = cache or RecordCache()
    with ThreadPoolExecutor(HISTORY_THREADS) as pool:
        records = list(pool.map(lambda s: cache.get(c, s), summaries))
    truth = ground_truth(c) if truth is None else truth
    for record in records:
        if record.s3_key and record.truth is None:
            record.truth = truth.get(record.s3_key)
    return records


def ground_truth(c=None, bucket: str | None = None) -> dict[str, str]:
    """S3 key -> class name for every image of every staged dataset (its .lst + classes.json)."""
    c = c or clients()
    bucket = bucket or config.BUCKET
    truth: dict[str, str] = {}
    try:
        listed = c.s3.list_objects_v2(Bucket=bucket, Prefix=DATASETS_PREFIX, Delimiter="/")
    except Exception as err:  # no bucket yet: nothing is known
        LOG.info("no ground truth from s3://%s/%s: %s", bucket, DATASETS_PREFIX, err)
        return truth
    for common in listed.get("CommonPrefixes", []):
        prefix = common["Prefix"]
        try:
            body = c.s3.get_object(Bucket=bucket, Key=f"{prefix}classes.json")["Body"].read()
            names = {int(k): str(v["name"]) for k, v in json.loads(body).items()}
        except Exception:  # not a scones-staged dataset
            continue
        for split in LST_SPLITS:
            try:
                text = c.s3.get_object(Bucket=bucket, Key=f"{prefix}{split}.lst")["Body"].read()
            except Exception:
                continue
            where = f"s3://{bucket}/{prefix}{split}.lst"
            for label, path in parse_lst(text.decode("utf-8", "replace"), where):
                truth[f"{prefix}{split}/{path}"] = names.get(label, str(label))
    return truth


def parse_lst(text: str, where: str = "<lst>") -> list[tuple[int, str]]:
    """(label, relative path) per line of a SageMaker .lst text, read by local_model.lst.

    Lenient by design, unlike training: the ground truth is a best effort over whatever sits under
    datasets/ in the bucket, and one bad line must not hide every other image's truth (nor fail
    the report), so a bad line is logged and skipped.
    """
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        try:
            entries += [(e.label, e.path) for e in lst.parse_lst(line, f"{where}:{lineno}")]
        except lst.BadLst as err:
            LOG.warning("skipping a bad .lst line: %s", err)
    return entries


def deployed_threshold(c=None) -> float:
    """The THRESHOLD the deployed filter function uses (else SCONES_CONFIDENCE_THRESHOLD)."""
    c = c or clients()
    try:
        cfg = c.lambda_.get_function_configuration(
            FunctionName=names().function("filter_inferences")
        )
        return float(cfg["Environment"]["Variables"]["THRESHOLD"])
    except Exception as err:  # not deployed yet, or no THRESHOLD set
        LOG.info("threshold from config (%s)", err)
        return config.CONFIDENCE_THRESHOLD


# ------------------------------ Data capture ------------------------------


@dataclass
class CaptureRecord:
    """One captured invocation of the endpoint (Model Monitor JSONL record)."""

    time: datetime
    inferences: list[float]
    image_sha: str | None = None
    event_id: str | None = None

    @property
    def confidence(self) -> float:
        return max(self.inferences)

    @property
    def top(self) -> int:
        return max(range(len(self.inferences)), key=self.inferences.__getitem__)


def capture_location() -> tuple[str, str]:
    """(bucket, prefix) of the endpoint's capture files: <destination>/<endpoint>/."""
    destination = config.CAPTURE_DESTINATION or f"s3://{config.BUCKET}/data_capture"
    bucket, _, prefix = destination.removeprefix("s3://").partition("/")
    prefix = "/".join(p for p in (prefix.strip("/"), config.ENDPOINT_NAME) if p)
    return bucket, prefix + "/"


def _decode_capture(part: dict) -> bytes:
    data = part.get("data") or ""
    if part.get("encoding") == "BASE64":
        return base64.b64decode(data)
    return data.encode()


def parse_capture_line(line: str) -> CaptureRecord | None:
    """A CaptureRecord from one JSONL line; None for lines without an output (Input mode)."""
    record = json.loads(line)
    data = record.get("captureData", {})
    output = data.get("endpointOutput")
    if not output:
        return None
    try:
        inferences = [float(v) for v in json.loads(_decode_capture(output))]
    except (ValueError, TypeError):
        return None  # an error answer, not probabilities
    if not inferences:
        return None
    meta = record.get("eventMetadata", {})
    when = datetime.strptime(meta["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    sha = None
    if data.get("endpointInput"):
        sha = hashlib.sha256(_decode_capture(data["endpointInput"])).hexdigest()
    return CaptureRecord(when, inferences, sha, meta.get("eventId"))


def read_capture(
    c=None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[CaptureRecord]:
    """Every captured invocation of SCONES_ENDPOINT_NAME in S3, oldest first."""
    c = c or clients()
    bucket, prefix = capture_location()
    keys: list[str] = []
    try:
        for page in c.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl")]
    except Exception as err:  # no bucket: nothing captured
        LOG.info("no capture under s3://%s/%s: %s", bucket, prefix, err)
        return []

    def read(key: str) -> list[CaptureRecord]:
        text = c.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        parsed = (parse_capture_line(line) for line in text.splitlines() if line.strip())
        return [r for r in parsed if r is not None]

    with ThreadPoolExecutor(HISTORY_THREADS) as pool:
        records = [r for chunk in pool.map(read, keys) for r in chunk]
    if since:
        records = [r for r in records if r.time >= since - CAPTURE_SLACK]
    if until:
        records = [r for r in records if r.time <= until + CAPTURE_SLACK]
    records.sort(key=lambda r: r.time)
    return records


# ------------------------------ Figures of merit ------------------------------


def threshold_effect(points: list[tuple[float, bool | None]], threshold: float) -> dict:
    """What a threshold would give on (confidence, correct) points.

    coverage: share routed automatically (confidence >= threshold); errors: routed but wrong
    (where the truth is known); review: sent to a person.
    """
    n = len(points)
    routed = [(conf, ok) for conf, ok in points if conf >= threshold]
    known = [ok for _, ok in routed if ok is not None]
    errors = sum(1 for ok in known if not ok)
    return {
        "threshold": threshold,
        "n": n,
        "routed": len(routed),
        "review": n - len(routed),
        "coverage": len(routed) / n if n else 0.0,
        "errors": errors,
        "error_rate": errors / len(known) if known else 0.0,
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else 0.0


@dataclass
class ReportSummary:
    """What a set of executions did: the report's figures of merit (report.json's "summary")."""

    executions: int
    images: int
    outcomes: dict[str, int]  # every executions.OUTCOMES key, 0 when none
    succeeded_by_label: dict[str, int]
    failed_by_error: dict[str, int]
    judged: int  # classified images with a known truth
    accuracy: float | None  # top label vs truth over the judged ones
    routed_accuracy: float | None  # the same over those routed (SUCCEEDED) only
    classes: list[str]
    confusion: list[list[int]]  # rows: truth, columns: label, in `classes` order
    threshold: float
    at_threshold: dict  # threshold_effect(): n, routed, coverage, wrong, review
    retries: int
    latency_s: dict[str, dict[str, float]]  # state (and "(execution)") -> n, p50, p95, max, mean
    capture_records: int = 0  # endpoint data-capture records read beside the executions

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(records: list[ExecutionRecord], threshold: float) -> ReportSummary:
    """Counts, accuracy, confusion matrix, threshold effect and step latencies of the records."""
    outcomes = Counter({o: 0 for o in OUTCOMES})
    outcomes.update(r.outcome for r in records)
    labels = Counter(r.label for r in records if r.outcome == "succeeded")
    errors = Counter(r.error for r in records if r.outcome == "failed")
    judged = [r for r in records if r.correct is not None]
    classes = sorted({r.truth for r in judged} | {r.label for r in judged})
    confusion = [
        [sum(1 for r in judged if r.truth == t and r.label == p) for p in classes] for t in classes
    ]
    routed = [r for r in judged if r.outcome == "succeeded"]
    steps: dict[str, list[float]] = {}
    for r in records:
        for state, seconds in r.steps.items():
            steps.setdefault(state, []).append(seconds)
    totals = [r.seconds for r in records if r.seconds is not None]
    points = [(r.confidence, r.correct) for r in records if r.confidence is not None]
    return ReportSummary(
        executions=len(records),
        images=len({r.s3_key for r in records}),
        outcomes=dict(outcomes),
        succeeded_by_label=dict(labels),
        failed_by_error=dict(errors),
        judged=len(judged),
        accuracy=sum(r.correct for r in judged) / len(judged) if judged else None,
        routed_accuracy=sum(r.correct for r in routed) / len(routed) if routed else None,
        classes=classes,
        confusion=confusion,
        threshold=threshold,
        at_threshold=threshold_effect(points, threshold),
        retries=sum(r.retries for r in records),
        latency_s={
            state: {
                "n": len(v),
                "p50": _percentile(v, 50),
                "p95": _percentile(v, 95),
                "max": max(v),
                "mean": statistics.fmean(v),
            }
            for state, v in sorted(steps.items())
        }
        | (
            {
                "(execution)": {
                    "n": len(totals),
                    "p50": _percentile(totals, 50),
                    "p95": _percentile(totals, 95),
                    "max": max(totals),
                    "mean": statistics.fmean(totals),
                }
            }
            if totals
            else {}
        ),
    )


# ------------------------------ Figures ------------------------------


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt  # lazy: matplotlib costs ~1 s; only the report draws

    plt.close(fig)
    return buffer.getvalue()


def _pyplot():
    import matplotlib  # lazy: matplotlib costs ~1 s; only the report draws

    matplotlib.use("Agg")  # no display here; and Streamlit's thread must not open windows
    import matplotlib.pyplot as plt

    return plt


def confidence_figure(
    times: list[datetime], confidences: list[float], threshold: float, title: str
) -> bytes:
    """The original project's graph: each inference's confidence over time, threshold line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.6))
    above = [(t, c) for t, c in zip(times, confidences, strict=True) if c >= threshold]
    below = [(t, c) for t, c in zip(times, confidences, strict=True) if c < threshold]
    if above:
        ax.scatter(*zip(*above, strict=True), s=14, color="#2a9d8f", label="routed")
    if below:
        ax.scatter(*zip(*below, strict=True), s=14, color="#e76f51", label="to review")
    ax.axhline(
        threshold,
        color="#264653",
        linestyle="--",
        linewidth=1.2,
        label=f"threshold {threshold:.2f}",
    )
    ax.set_ylim(min([0.45, *confidences]) - 0.02, 1.02)
    ax.set_ylabel("confidence (top probability)")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    import matplotlib.dates as mdates  # lazy: as _pyplot

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    return _png(fig)


def outcome_figure(outcomes: dict[str, int], errors: dict[str, int]) -> bytes:
    """Bars: succeeded, review, not a two-wheeler, and failed split by error."""
    plt = _pyplot()
    names = ["succeeded", "review", "not a two-wheeler", *[f"failed: {e}" for e in errors]]
    values = [
        outcomes.get("succeeded", 0),
        outcomes.get("review", 0),
        outcomes.get("not_a_two_wheeler", 0),
        *errors.values(),
    ]
    if outcomes.get("running"):
        names.append("running")
        values.append(outcomes["running"])
    colors = ["#2a9d8f", "#e9c46a", "#f4a261", *["#e76f51"] * len(errors), "#8d99ae"]
    colors = colors[: len(names)]
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(names)))
    ax.barh(names[::-1], values[::-1], color=colors[::-1])
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v}", va="center", fontsize=9)
    ax.set_xlabel("executions")
    return _png(fig)


def confusion_figure(classes: list[str], matrix: list[list[int]]) -> bytes:
    """Truth (rows) against the model's top label (columns), counts in the cells."""
    plt = _pyplot()
    size = 1.6 + 0.9 * len(classes)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    peak = max((v for row in matrix for v in row), default=0)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(
                j, i, str(v), ha="center", va="center", color="white" if v > peak / 2 else "black"
            )
    ax.set_xlabel("model's label")
    ax.set_ylabel("truth (.lst)")
    return _png(fig)


def latency_figure(records: list[ExecutionRecord]) -> bytes:
    """Box plot of each state's duration, from the history's timestamps."""
    plt = _pyplot()
    steps: dict[str, list[float]] = {}
    order: list[str] = []
    for r in sorted(records, key=lambda r: r.start):
        for state, seconds in r.steps.items():
            if state not in steps:
                order.append(state)
            steps.setdefault(state, []).append(seconds * 1000)
    totals = [r.seconds * 1000 for r in records if r.seconds is not None]
    if totals:
        order.append("(whole execution)")
        steps["(whole execution)"] = totals
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.42 * max(1, len(order))))
    if order:
        ax.boxplot(
            [steps[s] for s in order][::-1],
            orientation="horizontal",
            tick_labels=order[::-1],
            showfliers=True,
            flierprops={"markersize": 3},
        )
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds (log scale)")
    return _png(fig)


def thumbnail(image: bytes | None, px: int = THUMB_PX) -> bytes | None:
    """A small PNG (nearest neighbour keeps CIFAR's pixels crisp); None if unreadable."""
    if not image:
        return None
    from PIL import Image, UnidentifiedImageError  # lazy: Pillow only for thumbnails

    try:
        with Image.open(io.BytesIO(image)) as im:
            im = im.convert("RGB")
            if max(im.size) > px:
                im.thumbnail((px, px))
            scale = max(1, px // max(im.size))
            im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
            buffer = io.BytesIO()
            im.save(buffer, "PNG")
            return buffer.getvalue()
    except (UnidentifiedImageError, OSError, ValueError):
        return None


# ------------------------------ The report ------------------------------


@dataclass
class ReportResult:
    """Where the report went and what it says."""

    html: Path
    json: Path
    summary: ReportSummary
    seconds: float = 0.0


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if value <= 1 else f"{value:.3f}"
    return str(value)


def _gallery(records: list[ExecutionRecord], caption) -> str:
    tiles = []
    for r in records[:MAX_THUMBS]:
        thumb = thumbnail(r.image)
        img = (
            f'<img src="{_data_uri(thumb)}" alt="{html.escape(r.s3_key or "")}">'
            if thumb
            else '<div class="noimg">no image</div>'
        )
        tiles.append(f"<figure>{img}<figcaption>{html.escape(caption(r))}</figcaption></figure>")
    more = len(records) - MAX_THUMBS
    extra = f"<p>... and {more} more (see report.json)</p>" if more > 0 else ""
    return f'<div class="gallery">{"".join(tiles) or "<p>none</p>"}</div>{extra}'


def _accuracy_text(summary: ReportSummary) -> str:
    acc, routed = summary.accuracy, summary.routed_accuracy
    if acc is None:
        return "<p>No execution classified a staged image with a known label.</p>"
    text = (
        f"<p>Top label vs the .lst truth over {summary.judged} classified images: <b>{acc:.2%}</b>"
    )
    if routed is not None:
        text += f"; among the automatically routed ones {routed:.2%}"
    return text + ".</p>"


def _rejected_caption(r: ExecutionRecord) -> str:
    if r.outcome == "review":
        return f"review: {r.label} {r.confidence:.3f}"
    if r.outcome == "not_a_two_wheeler":
        return f"not a two-wheeler: {r.label} {r.confidence:.3f}"
    return f"{r.error}: {(r.s3_key or '').rsplit('/', 1)[-1]}"


CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:0}.sub{color:#666;margin-top:.2em}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#f4f4f4}
.kpi{display:flex;gap:1em;flex-wrap:wrap}.kpi div{background:#f4f7f7;padding:.6em 1em;
border-radius:6px}.kpi b{display:block;font-size:1.5em}.gallery{display:flex;flex-wrap:wrap;
gap:8px}figure{margin:0;width:120px;font-size:11px}figure img{image-rendering:pixelated;
width:64px;height:64px}.noimg{width:64px;height:64px;background:#eee;display:flex;
align-items:center;justify-content:center;font-size:10px;color:#888}
"""


def render_html(
    summary: ReportSummary, records: list[ExecutionRecord], figures: dict[str, bytes], meta: dict
) -> str:
    """The report page: every figure embedded as a data: URI, so the one file is the report."""

    def fig(name: str, alt: str) -> str:
        return f'<img alt="{alt}" src="{_data_uri(figures[name])}">' if name in figures else ""

    acc = summary.accuracy
    at = summary.at_threshold
    kpis = [
        ("executions", summary.executions),
        ("images", summary.images),
        ("succeeded", summary.outcomes["succeeded"]),
        ("review", summary.outcomes["review"]),
        ("not a two-wheeler", summary.outcomes["not_a_two_wheeler"]),
        ("failed", summary.outcomes["failed"]),
        ("accuracy", f"{acc:.1%} of {summary.judged}" if acc is not None else "n/a"),
        ("coverage", f"{at['coverage']:.1%}"),
    ]
    kpi_html = "".join(f"<div><b>{html.escape(str(v))}</b>{html.escape(k)}</div>" for k, v in kpis)
    latency_rows = [
        [s, v["n"], v["p50"] * 1000, v["p95"] * 1000, v["max"] * 1000]
        for s, v in summary.latency_s.items()
    ]
    wrong = [r for r in records if r.correct is False]
    rejected = [r for r in records if r.outcome in ("review", "not_a_two_wheeler", "failed")]
    rows = [
        [
            r.name,
            r.s3_key,
            r.truth,
            r.label,
            r.confidence,
            r.outcome,
            r.error if r.outcome == "failed" else "",
            r.seconds,
        ]
        for r in sorted(records, key=lambda r: r.start)[:MAX_TABLE_ROWS]
    ]
    errors = summary.failed_by_error
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>scones report {html.escape(meta['generated'])}</title><style>{CSS}</style>",
        "</head><body>",
        "<h1>scones report</h1>",
        f"<p class='sub'>{html.escape(meta['generated'])} · target {html.escape(meta['target'])}"
        f" · threshold {summary.threshold:g} · {html.escape(meta['selection'])}</p>",
        f"<div class='kpi'>{kpi_html}</div>",
        "<h2>Confidence over time</h2>",
        f"<p>{html.escape(meta['confidence_source'])}</p>",
        fig("confidence", "confidence over time"),
        "<h2>Outcomes</h2>",
        fig("outcomes", "outcome counts"),
        _table(
            ["outcome", "executions"],
            [[k, v] for k, v in summary.outcomes.items()]
            + [[f"failed: {k}", v] for k, v in errors.items()]
            + [[f"routed as {k}", v] for k, v in summary.succeeded_by_label.items()],
        ),
        f"<p>At threshold {summary.threshold:g}: {at['routed']} of {at['n']} classified "
        f"images routed automatically (coverage {at['coverage']:.1%}), {at['errors']} of them "
        f"wrong; {at['review']} sent to review. Task retries: {summary.retries}.</p>",
        "<h2>Accuracy</h2>",
        _accuracy_text(summary),
        fig("confusion", "confusion matrix"),
        "<h2>Latency per step</h2>",
        "<p>From each execution history's timestamps (state entered to state exited).</p>",
        fig("latency", "latency per step"),
        _table(["state", "n", "p50 ms", "p95 ms", "max ms"], latency_rows),
        f"<h2>Rejected images ({len(rejected)})</h2>",
        "<p>Sent to review (low confidence, or not a two-wheeler) or failed.</p>",
        _gallery(rejected, _rejected_caption),
        f"<h2>Wrong labels ({len(wrong)})</h2>",
        _gallery(wrong, lambda r: f"{r.truth} → {r.label} ({r.confidence:.3f})"),
        f"<h2>Every execution ({len(records)})</h2><details><summary>show table</summary>",
        _table(["name", "s3 key", "truth", "label", "confidence", "outcome", "error", "s"], rows),
        "</details></body></html>",
    ]
    return "\n".join(parts)


def build_report(
    out: Path | None = None,
    name_prefix: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    c=None,
) -> ReportResult:
    """Read executions and capture from the target, write index.html + report.json in ``out``."""
    began = time.monotonic()
    c = c or clients()
    out = Path(out) if out else config.STATE_DIR / "report"
    records = collect(c, name_prefix, since, limit)
    threshold = deployed_threshold(c)
    summary = summarize(records, threshold)
    figures: dict[str, bytes] = {}
    window = (
        min((r.start for r in records), default=None),
        max((r.stop or r.start for r in records), default=None),
    )
    captured = read_capture(c, *window) if records else []
    shas = {r.image_sha for r in records if r.image_sha}
    if name_prefix or since:  # a selection: only the invocations of its images
        captured = [r for r in captured if r.image_sha is None or r.image_sha in shas]
    if captured:
        source = (
            f"{len(captured)} invocations from the endpoint's data capture "
            f"(s3://{'/'.join(capture_location())})."
        )
        figures["confidence"] = confidence_figure(
            [r.time for r in captured],
            [r.confidence for r in captured],
            threshold,
            "endpoint data capture",
        )
    else:
        scored = sorted((r for r in records if r.confidence is not None), key=lambda r: r.start)
        source = (
            "No data capture found (is the model server capturing? SCONES_CAPTURE_ENABLED); "
            f"confidences of {len(scored)} executions from their histories instead."
        )
        if scored:
            figures["confidence"] = confidence_figure(
                [r.start for r in scored],
                [r.confidence for r in scored],
                threshold,
                "execution histories",
            )
    summary.capture_records = len(captured)
    if records:
        figures["outcomes"] = outcome_figure(summary.outcomes, summary.failed_by_error)
        figures["latency"] = latency_figure(records)
    if summary.judged:
        figures["confusion"] = confusion_figure(summary.classes, summary.confusion)
    selection = (
        ", ".join(
            s
            for s in (
                f"names {name_prefix}*" if name_prefix else "",
                f"since {since.isoformat()}" if since else "",
                f"newest {limit}" if limit else "",
            )
            if s
        )
        or "every execution of the image workflow"
    )
    meta = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "target": config.TARGET,
        "selection": selection,
        "confidence_source": source,
    }
    out.mkdir(parents=True, exist_ok=True)
    page = out / "index.html"
    page.write_text(render_html(summary, records, figures, meta), encoding="utf-8")
    for name, png in figures.items():  # beside the page too, for slides and issues
        (out / f"{name}.png").write_bytes(png)
    data = out / "report.json"
    data.write_text(
        json.dumps(
            {**meta, "summary": summary.to_dict(), "executions": [r.row() for r in records]},
            indent=1,
            default=str,
        )
    )
    return ReportResult(page, data, summary, round(time.monotonic() - began, 2))


def parse_since(value: str | None) -> datetime | None:
    """`30m`, `2h`, `1d` ago, or an ISO time (UTC when no zone is given)."""
    if not value:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return datetime.now(UTC) - timedelta(seconds=float(value[:-1]) * units[value[-1]])
    try:
        when = datetime.fromisoformat(value)
    except ValueError as err:
        raise ReportUsageError(f"--since {value!r}: give 30m, 2h, 1d or an ISO time") from err
    return when if when.tzinfo else when.replace(tzinfo=UTC)
