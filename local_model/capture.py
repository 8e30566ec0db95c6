"""SageMaker Model Monitor data capture: sampled invocations as JSONL files in S3.

Records follow the format Model Monitor writes for a real-time endpoint
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture.html)::

    {"captureData": {"endpointInput": {"observedContentType": "image/png", "mode": "INPUT",
                                       "data": "iVBORw0...", "encoding": "BASE64"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "[0.91, 0.09]", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<X-Amzn-SageMaker-Inference-Id>",
                       "inferenceTime": "2024-05-01T12:34:56Z"},
     "eventVersion": "0"}

and land at ``<destination>/<endpoint>/<variant>/YYYY/MM/DD/HH/<MM-SS-mmm>-<uuid>.jsonl``.

Durability: a record is buffered in memory when the request is answered; a buffer becomes a file
in the local spool directory (by size or age, and on shutdown) and is deleted from the spool only
once S3 has accepted it. A failed upload is logged, counted and retried with backoff; files still
in the spool at exit are uploaded by the next server start. Nothing is dropped silently.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local_model import LocalModelError, env

LOG = logging.getLogger(__name__)

CAPTURE_MODES = ("Input", "Output", "InputAndOutput")
RETRY_MIN_SECONDS = 1.0  # first retry of a failed upload; doubles up to RETRY_MAX_SECONDS
RETRY_MAX_SECONDS = 60.0
PART_SUFFIX = ".part"  # a spool file being written; never uploaded
DEFAULT_BUCKET = "scones-data"  # SCONES_BUCKET's default: s3://<bucket>/data_capture


class CaptureConfigError(LocalModelError):
    """The data-capture settings are invalid (destination, mode or sampling percentage)."""


@dataclass(frozen=True)
class CaptureConfig:
    """What SageMaker's DataCaptureConfig says, plus our buffering and spool settings."""

    destination: str  # DestinationS3Uri, s3://bucket[/prefix]
    sampling_percentage: float = 100.0  # InitialSamplingPercentage, 0-100
    mode: str = "InputAndOutput"  # CaptureOptions: Input, Output or InputAndOutput
    json_content_types: tuple[str, ...] = ("application/json",)
    csv_content_types: tuple[str, ...] = ("text/csv",)
    variant: str = "AllTraffic"
    flush_bytes: int = 1024 * 1024
    flush_seconds: float = 5.0
    spool_dir: Path = field(default_factory=lambda: default_spool_dir())

    def __post_init__(self) -> None:
        if not self.destination.startswith("s3://") or len(self.destination) <= len("s3://"):
            raise CaptureConfigError(
                f"capture destination {self.destination!r} is not an s3://bucket/prefix URI; "
                "set SCONES_CAPTURE_DESTINATION"
            )
        if self.mode not in CAPTURE_MODES:
            raise CaptureConfigError(
                f"capture mode {self.mode!r} is not one of {', '.join(CAPTURE_MODES)}; "
                "set SCONES_CAPTURE_MODE"
            )
        if not 0 <= self.sampling_percentage <= 100:
            raise CaptureConfigError(
                f"capture sampling {self.sampling_percentage} is outside 0-100; "
                "set SCONES_CAPTURE_SAMPLING"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> CaptureConfig:
        """Settings from SCONES_CAPTURE_* (see scones/config.py); keyword arguments not None win."""
        values: dict[str, Any] = {"destination": f"s3://{DEFAULT_BUCKET}/data_capture"}
        bucket = env.read({"bucket": ("BUCKET", str)}, environ).get("bucket")
        if bucket:
            values["destination"] = f"s3://{bucket}/data_capture"
        values["spool_dir"] = default_spool_dir(environ)
        values.update(env.read(ENV_FIELDS, environ))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def bucket(self) -> str:
        return self.destination[len("s3://") :].split("/", 1)[0]

    @property
    def prefix(self) -> str:
        rest = self.destination[len("s3://") :].split("/", 1)
        return rest[1].strip("/") if len(rest) > 1 else ""

    def object_key(self, endpoint: str, when: datetime) -> str:
        """Where one capture file goes, as Model Monitor lays them out."""
        name = f"{when:%M-%S}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        parts = [self.prefix, endpoint, self.variant, f"{when:%Y/%m/%d/%H}", name]
        return "/".join(p for p in parts if p)


def _types(value: str) -> tuple[str, ...]:
    return tuple(t.strip().lower() for t in value.split(",") if t.strip())


# CaptureConfig field: (SCONES_ variable, parser); the same variables scones/config.py validates.
ENV_FIELDS: dict[str, tuple[str, Any]] = {
    "destination": ("CAPTURE_DESTINATION", str),
    "sampling_percentage": ("CAPTURE_SAMPLING", float),
    "mode": ("CAPTURE_MODE", str),
    "json_content_types": ("CAPTURE_JSON_TYPES", _types),
    "csv_content_types": ("CAPTURE_CSV_TYPES", _types),
    "variant": ("MODEL_VARIANT", str),
    "flush_bytes": ("CAPTURE_FLUSH_BYTES", int),
    "flush_seconds": ("CAPTURE_FLUSH_SECONDS", float),
    "spool_dir": ("CAPTURE_SPOOL_DIR", env.path),
}


def default_spool_dir(environ: Mapping[str, str] | None = None) -> Path:
    """SCONES_CAPTURE_SPOOL_DIR, else <SCONES_STATE_DIR>/capture-spool."""
    found = env.read({"dir": ENV_FIELDS["spool_dir"]}, environ).get("dir")
    return found or env.state_dir(environ) / "capture-spool"


def _encode(data: bytes, content_type: str, cfg: CaptureConfig) -> tuple[str, str]:
    """(data, encoding) as Model Monitor stores a payload: JSON/CSV text when so configured."""
    base = content_type.split(";", 1)[0].strip().lower()
    for types, encoding in ((cfg.json_content_types, "JSON"), (cfg.csv_content_types, "CSV")):
        if base in types:
            try:
                return data.decode("utf-8"), encoding
            except UnicodeDecodeError:
                break  # not text after all: fall back to BASE64 rather than lose the record
    return base64.b64encode(data).decode("ascii"), "BASE64"


def capture_record(
    cfg: CaptureConfig,
    *,
    input_data: bytes,
    input_content_type: str,
    output_data: bytes,
    output_content_type: str,
    when: datetime,
    inference_id: str | None = None,
    event_id: str | None = None,
) -> dict:
    """One Model Monitor capture record for one invocation."""
    capture: dict[str, dict] = {}
    if cfg.mode in ("Input", "InputAndOutput"):
        data, encoding = _encode(input_data, input_content_type, cfg)
        capture["endpointInput"] = {
            "observedContentType": input_content_type,
            "mode": "INPUT",
            "data": data,
            "encoding": encoding,
        }
    if cfg.mode in ("Output", "InputAndOutput"):
        data, encoding = _encode(output_data, output_content_type, cfg)
        capture["endpointOutput"] = {
            "observedContentType": output_content_type,
            "mode": "OUTPUT",
            "data": data,
            "encoding": encoding,
        }
    metadata = {"eventId": event_id or str(uuid.uuid4())}
    if inference_id:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"}


@dataclass
class CaptureStats:
    """Counters the server exports as metrics."""

    records: int = 0  # records accepted into a buffer
    # Records in files an earlier run left in the spool: this run uploads them too, so
    # records_uploaded can exceed records; "all in S3" is records_pending == 0, not a comparison.
    records_recovered: int = 0
    records_pending: int = 0  # not in S3 yet: buffered, being spooled, or in spool files
    files_uploaded: int = 0
    records_uploaded: int = 0  # this run's and recovered records written to S3
    upload_failures: int = 0  # failed attempts (a file may fail several times)
    spooled_files: int = 0  # files waiting on local disk right now


@dataclass
class _Buffer:
    endpoint: str
    hour: str
    opened: float  # monotonic time of the first record
    first: datetime
    lines: list[bytes] = field(default_factory=list)
    size: int = 0


def _s3_client():
    """An S3 client: the emulator when the target is local and no AWS endpoint is configured."""
    import boto3

    kwargs: dict[str, Any] = {"region_name": env.region()}
    has_endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    local = env.target() == "local"
    if local and not has_endpoint:
        kwargs["endpoint_url"] = env.emulator_url()
    if local and not os.environ.get("AWS_ACCESS_KEY_ID"):
        kwargs.update(aws_access_key_id="test", aws_secret_access_key="test")  # emulator's
    return boto3.client("s3", **kwargs)


class CaptureWriter:
    """Buffers capture records and writes them to S3 from a background thread, via a disk spool."""

    def __init__(self, cfg: CaptureConfig, s3_client_factory=_s3_client) -> None:
        self.cfg = cfg
        self.stats = CaptureStats()
        self._client_factory = s3_client_factory
        self._client = None
        self._lock = threading.Lock()  # guards the buffers (request side vs flusher)
        self._io_lock = threading.Lock()  # one uploader at a time: no file is sent twice
        self._buffers: dict[tuple[str, str], _Buffer] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retry_at = 0.0  # monotonic time before which failed uploads are not retried
        self._retry_delay = RETRY_MIN_SECONDS
        self._spool = cfg.spool_dir / cfg.bucket

    # ---------------------------- request side (event loop) ----------------------------

    def sampled(self) -> bool:
        """Whether this invocation is captured (InitialSamplingPercentage)."""
        pct = self.cfg.sampling_percentage
        return pct >= 100 or (pct > 0 and random.random() * 100 < pct)

    def add(
        self,
        endpoint: str,
        *,
        input_data: bytes,
        input_content_type: str,
        output_data: bytes,
        output_content_type: str,
        inference_id: str | None = None,
        when: datetime | None = None,
    ) -> None:
        """Buffer one invocation's record; call before answering so a 200 implies a record."""
        when = when or datetime.now(UTC)
        record = capture_record(
            self.cfg,
            input_data=input_data,
            input_content_type=input_content_type,
            output_data=output_data,
            output_content_type=output_content_type,
            when=when,
            inference_id=inference_id,
        )
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        hour = f"{when:%Y%m%d%H}"
        with self._lock:
            buf = self._buffers.get((endpoint, hour))
            if buf is None:
                buf = _Buffer(endpoint, hour, time.monotonic(), when)
                self._buffers[(endpoint, hour)] = buf
            buf.lines.append(line)
            buf.size += len(line)
            self.stats.records += 1
            self.stats.records_pending += 1
            full = buf.size >= self.cfg.flush_bytes
        if full:
            self._wake.set()

    # ---------------------------- background side ----------------------------

    def start(self) -> None:
        """Start the flusher thread; files left in the spool by an earlier run go first."""
        self._spool.mkdir(parents=True, exist_ok=True)
        left = self._spooled()
        if left:
            LOG.warning(
                "capture: %d file(s) from an earlier run wait in %s", len(left), self._spool
            )
        recovered = sum(p.read_bytes().count(b"\n") for p in left)  # as _upload_spool counts
        with self._lock:
            self.stats.spooled_files = len(left)
            self.stats.records_recovered += recovered
            self.stats.records_pending += recovered
        partial = list(self._spool.rglob("*" + PART_SUFFIX))
        if partial:  # a process killed while writing one; its complete lines can be recovered
            LOG.warning(
                "capture: %d partly written file(s) in %s (*%s) are not uploaded",
                len(partial),
                self._spool,
                PART_SUFFIX,
            )
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick = max(0.05, min(1.0, self.cfg.flush_seconds / 4))
        while not self._stop.is_set():
            self._wake.wait(tick)
            self._wake.clear()
            try:
                with self._io_lock:
                    self._seal(force=False)
                    if time.monotonic() >= self._retry_at:
                        self._upload_spool()
            except Exception:  # the thread must survive anything; the files stay spooled
                LOG.exception("capture: flusher error; records stay in %s", self._spool)

    def _seal(self, force: bool) -> None:
        """Turn due buffers into spool files (full, old, from a past hour, or all when forced)."""
        now = time.monotonic()
        current_hour = f"{datetime.now(UTC):%Y%m%d%H}"
        with self._lock:
            due = [
                key
                for key, buf in self._buffers.items()
                if force
                or buf.size >= self.cfg.flush_bytes
                or now - buf.opened >= self.cfg.flush_seconds
                or buf.hour != current_hour
            ]
            sealed = [self._buffers.pop(key) for key in due]
        for buf in sealed:
            self._write_spool(buf)

    def _write_spool(self, buf: _Buffer) -> None:
        key = self.cfg.object_key(buf.endpoint, buf.first)
        path = self._spool / key
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + PART_SUFFIX)
        with open(part, "wb") as fh:
            fh.writelines(buf.lines)
            fh.flush()
            os.fsync(fh.fileno())  # the spool is the durable copy until S3 has it
        part.rename(path)
        self.stats.spooled_files += 1

    def _spooled(self) -> list[Path]:
        return sorted(
            (p for p in self._spool.rglob("*.jsonl") if p.is_file()),
            key=lambda p: p.stat().st_mtime,
        )

    def _upload_spool(self) -> bool:
        """Upload every spool file; returns True when the spool is empty afterwards."""
        files = self._spooled()
        for path in files:
            key = path.relative_to(self._spool).as_posix()
            body = path.read_bytes()
            try:
                if self._client is None:
                    self._client = self._client_factory()
                self._client.put_object(
                    Bucket=self.cfg.bucket, Key=key, Body=body, ContentType="application/jsonl"
                )
            except Exception as err:  # botocore raises many kinds; all mean "not written yet"
                self.stats.upload_failures += 1
                self._retry_at = time.monotonic() + self._retry_delay
                LOG.warning(
                    "capture: writing s3://%s/%s failed (%s); kept in %s, retry in %.0f s",
                    self.cfg.bucket,
                    key,
                    err,
                    path,
                    self._retry_delay,
                )
                self._retry_delay = min(RETRY_MAX_SECONDS, self._retry_delay * 2)
                self.stats.spooled_files = len(self._spooled())
                return False
            path.unlink()
            self._prune(path.parent)
            written = body.count(b"\n")
            with self._lock:  # records_pending is also counted up on the request side
                self.stats.files_uploaded += 1
                self.stats.records_uploaded += written
                self.stats.records_pending -= written
            self._retry_delay = RETRY_MIN_SECONDS
        self.stats.spooled_files = len(self._spooled())
        return True

    def _prune(self, folder: Path) -> None:
        """Remove emptied hour/day folders of the spool (not the spool itself)."""
        while folder != self._spool and self._spool in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty: another file still waits there
                return
            folder = folder.parent

    def flush(self) -> bool:
        """Write every buffered record to the spool and try to upload now; True when all in S3."""
        with self._io_lock:
            self._seal(force=True)
            return self._upload_spool()

    def close(self, timeout: float = 20.0) -> None:
        """Stop the thread, spool every buffered record, and upload for up to ``timeout`` s."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        delay = 0.2
        with self._io_lock:
            self._seal(force=True)
            while not self._upload_spool() and time.monotonic() + delay < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        left = self._spooled()
        if left:
            LOG.error(
                "capture: %d file(s) could not be written to s3://%s; kept in %s and uploaded "
                "when the server starts again",
                len(left),
                self.cfg.bucket,
                self._spool,
            )
