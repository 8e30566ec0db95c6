"""The local SageMaker endpoint: the ONNX model behind the container and runtime-API routes.

Routes:
- ``GET /ping``, ``POST /invocations``: the SageMaker hosting container contract
  (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html); the body is
  one image (image/png, image/jpeg, application/x-image), the answer a JSON list of probabilities
  in class order, like the built-in image-classification algorithm.
- ``POST /endpoints/{EndpointName}/invocations``: the SageMaker Runtime InvokeEndpoint API
  (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html), so
  ``boto3.client("sagemaker-runtime", endpoint_url=...)`` works unchanged, errors included.
- ``GET /health`` (JSON) and ``GET /metrics`` (Prometheus text).

Concurrent requests are decoded in a thread pool and micro-batched into one ONNX run.
Run it with ``python -m local_model.serve --model DIR --port P`` or ``scones serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response

from local_model import LocalModelError, env, preprocess
from local_model.capture import CaptureConfig, CaptureWriter

LOG = logging.getLogger(__name__)

IMAGE_CONTENT_TYPES = ("image/png", "image/jpeg", "application/x-image")
JSON = "application/json"
# Accept values answered with the plain list; "application/json;verbose" adds labels, like the
# built-in algorithm.
PLAIN_ACCEPTS = ("", "*/*", "application/*", JSON)
VERBOSE_ACCEPT = "application/json;verbose"
INFERENCE_ID_HEADER = "x-amzn-sagemaker-inference-id"
# SageMaker hands this response header to the caller as InvokeEndpoint's CustomAttributes; the
# body stays the plain list of probabilities the course's Lambdas expect.
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
GRACEFUL_SHUTDOWN_SECONDS = 30  # uvicorn finishes in-flight requests for at most this long
CAPTURE_CLOSE_SECONDS = 8.0  # S3 retries at shutdown; under the 10 s grace of `scones down`
# SCONES_MODEL_DIR, SCONES_ENDPOINT_NAME and SCONES_MODEL_HOST/PORT unset: the committed model,
# the endpoint name our Lambdas call, loopback and SageMaker's container port.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"
DEFAULT_ENDPOINT_NAME = "scones-classifier"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080


class ModelMissing(LocalModelError):
    """The model directory lacks model.onnx or model.json."""


class ModelInvalid(LocalModelError):
    """model.json or model.onnx does not follow the model-directory contract."""


class InvocationError(Exception):
    """A request the server refuses; ``status`` is the container's HTTP status."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message

    def body(self) -> bytes:
        return json.dumps({"error": self.kind, "message": self.message}).encode()


# ------------------------------ Settings ------------------------------


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server needs; ``from_env`` reads the SCONES_* variables."""

    model_dir: Path
    endpoint_names: tuple[str, ...]  # the first is canonical (used by /invocations)
    variant: str = "AllTraffic"
    max_batch: int = 32
    max_wait_ms: float = 2.0
    intra_op_threads: int = 2
    decode_threads: int = 2
    max_payload: int = 6 * 1024 * 1024
    max_pixels: int = preprocess.MAX_PIXELS
    capture: CaptureConfig | None = None
    account_id: str = "000000000000"
    region: str = "us-east-1"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServerSettings:
        """Settings from SCONES_* variables; keyword arguments that are not None override them."""
        values: dict[str, Any] = {
            "model_dir": DEFAULT_MODEL_DIR,
            "endpoint_names": endpoint_names(environ),
            "region": env.region(environ),
        }
        values.update(env.read(ENV_FIELDS, environ))
        enabled = env.read({"on": ("CAPTURE_ENABLED", env.flag)}, environ).get("on")
        values["capture"] = CaptureConfig.from_env(environ) if enabled else None
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["model_dir"] = Path(values["model_dir"]).expanduser().resolve()
        return cls(**values)


# ServerSettings field: (SCONES_ variable, parser); the same variables scones/config.py validates.
ENV_FIELDS: dict[str, tuple[str, Any]] = {
    "model_dir": ("MODEL_DIR", env.path),
    "variant": ("MODEL_VARIANT", str),
    "max_batch": ("MODEL_MAX_BATCH", int),
    "max_wait_ms": ("MODEL_MAX_WAIT_MS", float),
    "intra_op_threads": ("MODEL_INTRA_OP_THREADS", int),
    "decode_threads": ("MODEL_DECODE_THREADS", int),
    "max_payload": ("MODEL_MAX_PAYLOAD", int),
    "max_pixels": ("MODEL_MAX_PIXELS", int),
    "account_id": ("ACCOUNT_ID", str),
}


def endpoint_names(
    environ: Mapping[str, str] | None = None, name: str | None = None, aliases=None
) -> tuple[str, ...]:
    """SCONES_ENDPOINT_NAME then SCONES_ENDPOINT_ALIASES (or the given ones), without repeats."""
    got = env.read(
        {"name": ("ENDPOINT_NAME", str), "aliases": ("ENDPOINT_ALIASES", env.names)}, environ
    )
    first = name or got.get("name", DEFAULT_ENDPOINT_NAME)
    extra = aliases if aliases is not None else got.get("aliases", ())
    return tuple(dict.fromkeys([first, *extra]))


# ------------------------------ Model ------------------------------


def read_model_json(model_dir: Path) -> dict:
    """model.json of a model directory, checked against the contract serve.py relies on."""
    onnx_path, meta_path = model_dir / "model.onnx", model_dir / "model.json"
    for path in (onnx_path, meta_path):
        if not path.is_file():
            raise ModelMissing(
                f"no {path.name} in {model_dir}; run `scones train` or pass --model DIR "
                "(a folder with model.onnx and model.json)"
            )
    try:
        meta = json.loads(meta_path.read_text())
        classes = [str(c) for c in meta["classes"]]
        missing = [k for k, v in (("input.name", meta["input"].get("name")),
                                  ("outputs.probabilities", meta["outputs"].get("probabilities")))
                   if not v]  # fmt: skip
    except (ValueError, KeyError, TypeError) as err:
        raise ModelInvalid(
            f"{meta_path} must hold classes, input.name and outputs.probabilities ({err!r})"
        ) from err
    if missing or not classes:
        raise ModelInvalid(f"{meta_path} lacks {', '.join(missing) or 'classes'}")
    return meta


@dataclass
class OnnxModel:
    """An onnxruntime session plus what model.json says about its input and output."""

    session: Any
    input_name: str
    output_name: str
    classes: list[str]
    spec: dict
    model_dir: Path
    ood_name: str | None = None  # the unknown-image score, when model.json names one

    @classmethod
    def load(cls, model_dir: Path, intra_op_threads: int = 2) -> OnnxModel:
        import onnxruntime as ort

        meta = read_model_json(model_dir)
        opts = ort.SessionOptions()
        # Deliberate for 2 cores: one ORT run at a time on intra_op_threads (the micro-batcher
        # feeds it); no spinning, so ORT threads waiting for work leave the cores to the event
        # loop and the decode threads instead of burning them.
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(
                str(model_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelInvalid(
                f"onnxruntime cannot load {model_dir / 'model.onnx'}: {err}"
            ) from err
        model = cls(
            session=session,
            input_name=str(meta["input"]["name"]),
            output_name=str(meta["outputs"]["probabilities"]),
            classes=[str(c) for c in meta["classes"]],
            spec=dict(meta["input"]),
            model_dir=model_dir,
            ood_name=meta["outputs"].get("ood_score") or None,
        )
        probs = model.run(np.zeros((1, 3, *model.input_hw), dtype=np.float32))
        if probs.shape != (1, len(model.classes)):
            raise ModelInvalid(
                f"{model_dir}: output {model.output_name!r} has shape {probs.shape[1:]}, "
                f"model.json lists {len(model.classes)} classes"
            )
        return model

    @property
    def input_hw(self) -> tuple[int, int]:
        return int(self.spec.get("height", 32)), int(self.spec.get("width", 32))

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 -> (N, classes) probabilities."""
        return self.run_with_ood(batch)[0]

    def run_with_ood(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, 3, H, W) float32 -> probabilities (N, classes), ood_score (N,) or None."""
        names = [self.output_name] + ([self.ood_name] if self.ood_name else [])
        out = self.session.run(names, {self.input_name: batch})
        ood = np.asarray(out[1], dtype=np.float32) if self.ood_name else None
        return np.asarray(out[0], dtype=np.float32), ood

    def prepare(self, data: bytes, max_pixels: int) -> np.ndarray:
        """Image bytes -> (3, H, W), with training's preprocessing (local_model.preprocess)."""
        h, w = self.input_hw
        image = preprocess.decode_image(data, max_pixels=max_pixels, min_size=2 * max(h, w))
        return preprocess.prepare(image, self.spec)


# ------------------------------ Micro-batching ------------------------------


@dataclass(frozen=True)
class Answer:
    """One image's result: probabilities in class order, and the unknown-image score u (0..1:
    0 = like the training images, 1 = certainly none of the classes), None if the model has none.
    """

    probs: np.ndarray
    ood_score: float | None = None


class MicroBatcher:
    """Collects concurrent requests into one ONNX run on a dedicated thread.

    A batch starts as soon as the model is free. It waits (at most ``max_wait_s``) only while
    other requests are still being decoded, so a lone request never waits and a burst shares
    one run; requests that arrive during a run form the next batch.
    """

    def __init__(self, model: OnnxModel, max_batch: int, max_wait_s: float, metrics) -> None:
        self.model = model
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max(0.0, max_wait_s)
        self.metrics = metrics
        self.decoding = 0  # requests between "body read" and "queued"
        self._queue: asyncio.Queue | None = None
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="onnx")

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._arrived = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._queue is not None and not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(RuntimeError("server shutting down"))
        self._executor.shutdown(wait=True)

    def submit(self, x: np.ndarray) -> asyncio.Future:
        """Queue one prepared image (3, H, W); the future resolves to its Answer."""
        fut = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((x, fut))
        self._arrived.set()
        return fut

    async def _collect(self) -> list:
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.perf_counter()
            if self.decoding <= 0 or remaining <= 0:
                break  # nobody else is coming soon: do not make this batch wait
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            futures = [fut for _, fut in batch]
            try:
                x = np.stack([item for item, _ in batch])
                began = time.perf_counter()
                probs, ood = await loop.run_in_executor(self._executor, self.model.run_with_ood, x)
                self.metrics.inference.observe(time.perf_counter() - began)
                self.metrics.batch_size.observe(len(batch))
            except Exception as err:  # the model failed: every request of the batch learns it
                LOG.exception("ONNX run failed for a batch of %d", len(batch))
                for fut in futures:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            for i, fut in enumerate(futures):
                if not fut.done():  # the client may have gone away
                    fut.set_result(Answer(probs[i], None if ood is None else float(ood[i])))


# ------------------------------ Metrics ------------------------------


class ServerMetrics:
    """Prometheus metrics of one server instance (own registry, so tests can build many apps)."""

    def __init__(self, capture: CaptureWriter | None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

        disable_created_metrics()  # the *_created series only double the scrape size
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "scones_model_requests",
            "Invocations answered, by route and HTTP status",
            ["route", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "scones_model_errors",
            "Refused or failed invocations, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "scones_model_request_seconds",
            "Invocation time in the server, body read to answer",
            buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.5, 2.5),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "scones_model_batch_size",
            "Images per ONNX run",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.inference = Histogram(
            "scones_model_inference_seconds",
            "Time of one ONNX run",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
            registry=self.registry,
        )
        if capture is not None:
            self.registry.register(_CaptureCollector(capture))

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _CaptureCollector:
    """Exports the capture writer's counters at scrape time."""

    def __init__(self, capture: CaptureWriter) -> None:
        self.capture = capture

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.capture.stats
        yield CounterMetricFamily("scones_capture_records", "Records captured", value=s.records)
        yield CounterMetricFamily(
            "scones_capture_records_uploaded",
            "Captured records written to S3",
            value=s.records_uploaded,
        )
        yield CounterMetricFamily(
            "scones_capture_files_uploaded", "Capture files written to S3", value=s.files_uploaded
        )
        yield CounterMetricFamily(
            "scones_capture_upload_failures",
            "Failed S3 writes of capture files (retried)",
            value=s.upload_failures,
        )
        yield GaugeMetricFamily(
            "scones_capture_spooled_files",
            "Capture files waiting on local disk for S3",
            value=s.spooled_files,
        )


# ------------------------------ The server ------------------------------


@dataclass
class Server:
    """State of one running server: model, batcher, capture writer, metrics."""

    settings: ServerSettings
    model: OnnxModel | None = None
    batcher: MicroBatcher | None = None
    capture: CaptureWriter | None = None
    metrics: ServerMetrics | None = None
    decode_pool: ThreadPoolExecutor | None = None
    started: float = field(default_factory=time.time)

    async def start(self) -> None:
        s = self.settings
        self.model = await asyncio.to_thread(OnnxModel.load, s.model_dir, s.intra_op_threads)
        # One full-size batch now: onnxruntime sizes its memory arena on the first big run,
        # which would otherwise land on the first burst of real requests.
        full = np.zeros((max(1, s.max_batch), 3, *self.model.input_hw), dtype=np.float32)
        await asyncio.to_thread(self.model.run, full)
        self.capture = CaptureWriter(s.capture) if s.capture is not None else None
        self.metrics = ServerMetrics(self.capture)
        self.decode_pool = ThreadPoolExecutor(s.decode_threads, thread_name_prefix="decode")
        self.batcher = MicroBatcher(self.model, s.max_batch, s.max_wait_ms / 1000, self.metrics)
        self.batcher.start()
        if self.capture is not None:
            self.capture.start()
        LOG.info(
            "serving %s (%s) as %s",
            s.model_dir,
            ", ".join(self.model.classes),
            ", ".join(s.endpoint_names),
        )

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()
        if self.decode_pool is not None:
            self.decode_pool.shutdown(wait=True)
        if self.capture is not None:
            # uvicorn has finished every in-flight request by now: the buffers are complete.
            await asyncio.to_thread(self.capture.close, CAPTURE_CLOSE_SECONDS)
        self.model = None

    async def invoke(self, request: Request, endpoint: str) -> tuple[bytes, str, dict]:
        """Run one invocation: check, decode, batch, answer, capture. Raises InvocationError.

        Returns the body, its media type and response headers (the ood_score as CustomAttributes).
        """
        s = self.settings
        content_type = request.headers.get("content-type", "")
        base_type = content_type.split(";", 1)[0].strip().lower()
        if base_type not in IMAGE_CONTENT_TYPES:
            raise InvocationError(
                415,
                "UnsupportedContentType",
                f"content type {content_type or '(none)'!r} is not supported; send one image as "
                f"{', '.join(IMAGE_CONTENT_TYPES)}",
            )
        accept = request.headers.get("accept", "").replace(" ", "").lower()
        verbose = accept == VERBOSE_ACCEPT
        if not verbose and not any(a.split(";")[0] in PLAIN_ACCEPTS for a in accept.split(",")):
            raise InvocationError(
                406,
                "UnsupportedAccept",
                f"accept {accept!r} is not supported; ask for {JSON} or {VERBOSE_ACCEPT}",
            )
        body = await _read_body(request, s.max_payload)
        if not body:
            raise InvocationError(400, "EmptyBody", "empty request body; send one image")
        loop = asyncio.get_running_loop()
        self.batcher.decoding += 1
        try:
            x = await loop.run_in_executor(self.decode_pool, self._prepare, body)
            probs_future = self.batcher.submit(x)
        finally:
            self.batcher.decoding -= 1
        try:
            result = await probs_future
        except Exception as err:
            raise InvocationError(500, "InferenceFailed", f"the model failed: {err}") from err
        values = [float(p) for p in result.probs]
        headers = {}
        if result.ood_score is not None:
            headers[CUSTOM_ATTRIBUTES_HEADER] = f"ood_score={result.ood_score:.6f}"
        if verbose:
            best = int(np.argmax(result.probs))
            answer = {
                "prediction": values,
                "labels": self.model.classes,
                "predicted_label": self.model.classes[best],
            }
            if result.ood_score is not None:
                answer["ood_score"] = result.ood_score
        else:
            answer = values
        out = json.dumps(answer).encode()
        if self.capture is not None and self.capture.sampled():
            self.capture.add(
                endpoint,
                input_data=body,
                input_content_type=content_type,
                output_data=out,
                output_content_type=JSON,
                inference_id=request.headers.get(INFERENCE_ID_HEADER) or None,
            )
        return out, JSON, headers

    def _prepare(self, body: bytes) -> np.ndarray:
        try:
            return self.model.prepare(body, self.settings.max_pixels)
        except preprocess.ImageTooLarge as err:
            raise InvocationError(413, "ImageTooLarge", _one_line(err)) from err
        except preprocess.InvalidImage as err:
            raise InvocationError(400, "InvalidImage", _one_line(err)) from err
        except Exception as err:  # a bug of ours, not the caller's: logged, answered as JSON 500
            LOG.exception("preprocessing failed")
            raise InvocationError(500, "PreprocessingFailed", _one_line(err)) from err


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    too_large = InvocationError(
        413,
        "PayloadTooLarge",
        f"request body is larger than the {limit:,}-byte SageMaker payload limit; "
        "send a smaller image",
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


# An access key id carries its account (AWS's key format: 4-letter prefix, then the account id in
# base32 from offset 0x8000000000, doubled, its low bit in character 12); LocalStack's LSIA/LKIA
# keys follow it, and a 12-digit key id *is* the account (how scones addresses accounts).
CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")
KEY_ACCOUNT_OFFSET = 0x8000000000
KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def caller_account(authorization: str | None) -> str | None:
    """The AWS account a SigV4-signed request comes from (as AWS names it in its errors)."""
    match = CREDENTIAL.search(authorization or "")
    if not match:
        return None
    key = match.group(1)
    if re.fullmatch(r"\d{12}", key):
        return key
    if len(key) < 20 or key[:4] not in ("AKIA", "ASIA", "LKIA", "LSIA"):
        return None
    try:
        high = int.from_bytes(base64.b32decode(key[4:12]), "big") - KEY_ACCOUNT_OFFSET
        account = 2 * high + (KEY_ALPHABET.index(key[12]) >= 16)
    except (binascii.Error, ValueError):
        return None
    return f"{account:012d}" if 0 <= account <= 999_999_999_999 else None


def _runtime_error(code: str, status: int, body: dict) -> Response:
    """An error as the SageMaker Runtime service sends it (botocore reads x-amzn-ErrorType)."""
    return Response(
        json.dumps(body).encode(),
        status_code=status,
        media_type=JSON,
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def create_app(settings: ServerSettings) -> FastAPI:
    """The FastAPI app for one model directory; the model loads in the lifespan."""
    server = Server(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await server.start()
        app.state.server = server
        yield
        await server.stop()

    app = FastAPI(
        title="scones local SageMaker endpoint",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    async def answer(request: Request, endpoint: str, route: str) -> Response | InvocationError:
        began = time.perf_counter()
        try:
            body, media_type, headers = await server.invoke(request, endpoint)
        except InvocationError as err:
            if err.status >= 500:
                LOG.error("invocation failed: %s", err.message)
            server.metrics.errors.labels(err.kind).inc()
            server.metrics.requests.labels(route, str(err.status)).inc()
            return err
        server.metrics.latency.observe(time.perf_counter() - began)
        server.metrics.requests.labels(route, "200").inc()
        return Response(body, media_type=media_type, headers=headers)

    @app.get("/ping")
    async def ping() -> Response:
        """SageMaker's health check: 200 once the model is loaded."""
        return Response(status_code=200 if server.model is not None else 503)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        """The container route: one image in, a JSON list of probabilities out."""
        result = await answer(request, settings.endpoint_names[0], "invocations")
        if isinstance(result, InvocationError):
            return Response(result.body(), status_code=result.status, media_type=JSON)
        return result

    @app.post("/endpoints/{endpoint_name}/invocations")
    async def invoke_endpoint(endpoint_name: str, request: Request) -> Response:
        """The SageMaker Runtime InvokeEndpoint route, with its headers and error shapes."""
        if endpoint_name not in settings.endpoint_names:
            server.metrics.errors.labels("EndpointNotFound").inc()
            server.metrics.requests.labels("runtime", "400").inc()
            account = caller_account(request.headers.get("authorization")) or settings.account_id
            message = f"Endpoint {endpoint_name} of account {account} not found."
            return _runtime_error("ValidationError", 400, {"message": message})
        result = await answer(request, endpoint_name, "runtime")
        if isinstance(result, InvocationError):
            if result.kind == "PayloadTooLarge":  # the service refuses it before the model
                return _runtime_error("ValidationError", 400, {"message": result.message})
            account = caller_account(request.headers.get("authorization")) or settings.account_id
            return _model_error(settings, endpoint_name, result, account)
        result.headers["x-Amzn-Invoked-Production-Variant"] = settings.variant
        result.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return result

    @app.get("/health")
    async def health() -> Response:
        """Readiness plus what is served: model, classes, endpoint names, capture counters."""
        model, capture = server.model, server.capture
        info = {
            "status": "ok" if model is not None else "loading",
            "model_dir": str(settings.model_dir),
            "classes": model.classes if model else [],
            "endpoints": list(settings.endpoint_names),
            "variant": settings.variant,
            "uptime_s": round(time.time() - server.started, 1),
            "capture": (
                {"destination": capture.cfg.destination, **capture.stats.__dict__}
                if capture
                else None
            ),
        }
        return Response(json.dumps(info).encode(), 200 if model else 503, media_type=JSON)

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text: requests, errors by kind, batch sizes, latency, capture."""
        body, media_type = server.metrics.render()
        return Response(body, media_type=media_type)

    return app


def _model_error(
    settings: ServerSettings, endpoint: str, err: InvocationError, account: str
) -> Response:
    """The container refused the request: SageMaker wraps that in a 424 ModelError."""
    side = "client" if err.status < 500 else "server"
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    original = err.body().decode()
    message = (
        f'Received {side} error ({err.status}) from primary with message "{original}". '
        f"See https://{settings.region}.console.aws.amazon.com/cloudwatch/home?region="
        f"{settings.region}#logEventViewer:group={group} in account {account} "
        "for more information."
    )
    body = {
        "ErrorCode": f"{side.upper()}_ERROR_FROM_MODEL",
        "LogStreamArn": f"arn:aws:logs:{settings.region}:{account}:log-group:{group}",
        "Message": message,
        "OriginalMessage": original,
        "OriginalStatusCode": err.status,
    }
    return _runtime_error("ModelError", 424, body)


# ------------------------------ Entry point ------------------------------


def run(settings: ServerSettings, host: str, port: int, log_level: str = "info") -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish and capture is flushed first."""
    import uvicorn

    read_model_json(settings.model_dir)  # a one-line error now beats a traceback in the lifespan
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,  # a line per request costs more than the request on 2 cores
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        lifespan="on",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local_model.serve", description="The local SageMaker endpoint."
    )
    parser.add_argument("--model", type=Path, default=None, help="model dir (SCONES_MODEL_DIR)")
    parser.add_argument("--host", default=None, help="bind address (SCONES_MODEL_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (SCONES_MODEL_PORT)")
    parser.add_argument("--endpoint-name", default=None, help="SCONES_ENDPOINT_NAME")
    parser.add_argument(
        "--alias", action="append", default=None, help="another endpoint name (repeatable)"
    )
    parser.add_argument("--max-batch", type=int, default=None)
    parser.add_argument("--max-wait-ms", type=float, default=None)
    parser.add_argument("--intra-op-threads", type=int, default=None)
    parser.add_argument("--decode-threads", type=int, default=None)
    cap = parser.add_mutually_exclusive_group()
    cap.add_argument("--capture", dest="capture", action="store_true", default=None)
    cap.add_argument("--no-capture", dest="capture", action="store_false")
    parser.add_argument("--capture-destination", default=None, help="s3://bucket/prefix")
    parser.add_argument("--capture-sampling", type=float, default=None, help="percent, 0-100")
    parser.add_argument("--capture-mode", default=None, help="Input, Output or InputAndOutput")
    parser.add_argument("--log-level", default="info")
    return parser


def settings_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ServerSettings:
    """ServerSettings from parsed CLI arguments over the SCONES_* variables."""
    names = None
    if args.endpoint_name or args.alias:
        names = endpoint_names(environ, args.endpoint_name, args.alias)
    server = ServerSettings.from_env(
        environ,
        model_dir=args.model,
        endpoint_names=names,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        intra_op_threads=args.intra_op_threads,
        decode_threads=args.decode_threads,
    )
    enabled = server.capture is not None if args.capture is None else args.capture
    if enabled:
        capture = CaptureConfig.from_env(
            environ,
            destination=args.capture_destination,
            sampling_percentage=args.capture_sampling,
            mode=args.capture_mode,
            variant=server.variant,
        )
        server = replace(server, capture=capture)
    else:
        server = replace(server, capture=None)
    return server


def main(argv: list[str] | None = None) -> None:
    """`python -m local_model.serve --model DIR --port P`: what `scones up` starts."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        server = settings_from_args(args)
        where = env.read({"host": ("MODEL_HOST", str), "port": ("MODEL_PORT", int)})
        run(
            server,
            args.host or where.get("host", DEFAULT_HOST),
            args.port or where.get("port", DEFAULT_PORT),
            args.log_level.lower(),
        )
    except LocalModelError as err:
        LOG.error("%s", err)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
