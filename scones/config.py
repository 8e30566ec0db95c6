"""Every setting of scones, read once from the environment (all prefixed SCONES_)."""

import os
from pathlib import Path

from scones import PROJECT_ROOT


def _path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


# ------------------------------ Target and state ------------------------------
# default: local. "local" runs everything against the emulator on this machine; "cloud" uses AWS.
TARGET = (os.environ.get("SCONES_TARGET") or "local").lower()
# default: <repo>/.scones. Holds the emulator venv, pids, logs, emulator state and caches.
STATE_DIR = _path("SCONES_STATE_DIR", PROJECT_ROOT / ".scones")
# default: us-east-1. Region used for every AWS call, local or cloud.
REGION = os.environ.get("SCONES_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

# ------------------------------ Emulator (LocalStack core) ------------------------------
# default: 127.0.0.1. LocalStack's gateway binds here only (loopback, never 0.0.0.0).
EMULATOR_HOST = os.environ.get("SCONES_EMULATOR_HOST") or "127.0.0.1"
# default: 4566, LocalStack's usual port.
EMULATOR_PORT = int(os.environ.get("SCONES_EMULATOR_PORT") or 4566)
# default: <state>/localstack-venv. The emulator's own virtual environment.
EMULATOR_VENV = _path("SCONES_EMULATOR_VENV", STATE_DIR / "localstack-venv")
# default: empty = search. A Python >= 3.12 for LocalStack core 2026.3.0; else 3.11 + 4.9.2.
EMULATOR_PYTHON = os.environ.get("SCONES_EMULATOR_PYTHON") or ""
# default: s3,lambda,... The AWS services the emulator starts (plus those `scones import` enabled).
EMULATOR_SERVICES = (
    os.environ.get("SCONES_EMULATOR_SERVICES")
    or "s3,lambda,stepfunctions,sns,sqs,events,iam,sts,logs"
)
# default: 90. Seconds `scones up` waits for the emulator to report healthy.
EMULATOR_START_TIMEOUT = float(os.environ.get("SCONES_EMULATOR_START_TIMEOUT") or 90)
# default: 000000000000, LocalStack's default account for test credentials.
ACCOUNT_ID = os.environ.get("SCONES_ACCOUNT_ID") or "000000000000"

# ------------------------------ Model server ------------------------------
# default: 127.0.0.1. The local SageMaker-compatible endpoint binds here.
MODEL_HOST = os.environ.get("SCONES_MODEL_HOST") or "127.0.0.1"
# default: 8080, the port SageMaker containers listen on.
MODEL_PORT = int(os.environ.get("SCONES_MODEL_PORT") or 8080)
# default: <repo>/local_model/default. The model directory (model.onnx + model.json) served.
MODEL_DIR = _path("SCONES_MODEL_DIR", PROJECT_ROOT / "local_model" / "default")
# default: scones-classifier. The endpoint name our Lambdas call.
ENDPOINT_NAME = os.environ.get("SCONES_ENDPOINT_NAME") or "scones-classifier"

# ------------------------------ Model server: serving and data capture ---------------------
# default: empty. Comma-separated extra endpoint names the server also answers to (runtime API).
ENDPOINT_ALIASES = [
    n.strip() for n in (os.environ.get("SCONES_ENDPOINT_ALIASES") or "").split(",") if n.strip()
]
# default: AllTraffic, the SageMaker SDK's variant name (x-Amzn-Invoked-Production-Variant).
MODEL_VARIANT = os.environ.get("SCONES_MODEL_VARIANT") or "AllTraffic"
# default: 32. Most images one ONNX run takes when concurrent requests are micro-batched.
MODEL_MAX_BATCH = int(os.environ.get("SCONES_MODEL_MAX_BATCH") or 32)
# default: 2. Milliseconds a batch waits for requests still being decoded; never when idle.
MODEL_MAX_WAIT_MS = float(os.environ.get("SCONES_MODEL_MAX_WAIT_MS") or 2)
# default: 2 (both cores). onnxruntime intra-op threads, no spinning: they yield the cores to HTTP
# and decoding between runs; 2 cuts a lone image's latency by about a third against 1.
MODEL_INTRA_OP_THREADS = int(os.environ.get("SCONES_MODEL_INTRA_OP_THREADS") or 2)
# default: 2. Threads decoding and resizing images off the event loop.
MODEL_DECODE_THREADS = int(os.environ.get("SCONES_MODEL_DECODE_THREADS") or 2)
# default: 6291456 (6 MB), SageMaker's InvokeEndpoint payload limit, in bytes.
MODEL_MAX_PAYLOAD = int(os.environ.get("SCONES_MODEL_MAX_PAYLOAD") or 6 * 1024 * 1024)
# default: 40000000. Decoded pixels above this are refused as a decompression bomb.
MODEL_MAX_PIXELS = int(os.environ.get("SCONES_MODEL_MAX_PIXELS") or 40_000_000)
# default: 0 (off). 1 captures invocations like SageMaker's DataCaptureConfig EnableCapture.
CAPTURE_ENABLED = (os.environ.get("SCONES_CAPTURE_ENABLED") or "0").lower() in ("1", "true", "yes")
# default: empty = s3://<SCONES_BUCKET>/data_capture. DataCaptureConfig DestinationS3Uri.
CAPTURE_DESTINATION = os.environ.get("SCONES_CAPTURE_DESTINATION") or ""
# default: 100. DataCaptureConfig InitialSamplingPercentage: share of requests captured (0-100).
CAPTURE_SAMPLING = float(os.environ.get("SCONES_CAPTURE_SAMPLING") or 100)
# default: InputAndOutput. CaptureMode: Input, Output or InputAndOutput.
CAPTURE_MODE = os.environ.get("SCONES_CAPTURE_MODE") or "InputAndOutput"
# default: application/json. CaptureContentTypeHeader JsonContentTypes (captured as JSON text).
CAPTURE_JSON_TYPES = os.environ.get("SCONES_CAPTURE_JSON_TYPES") or "application/json"
# default: text/csv. CaptureContentTypeHeader CsvContentTypes; anything else is BASE64.
CAPTURE_CSV_TYPES = os.environ.get("SCONES_CAPTURE_CSV_TYPES") or "text/csv"
# default: 1048576. A capture file is written once its buffer holds this many bytes.
CAPTURE_FLUSH_BYTES = int(os.environ.get("SCONES_CAPTURE_FLUSH_BYTES") or 1024 * 1024)
# default: 5. ... or once its oldest record is this many seconds old.
CAPTURE_FLUSH_SECONDS = float(os.environ.get("SCONES_CAPTURE_FLUSH_SECONDS") or 5)
# default: <state>/capture-spool. Capture files wait here until S3 accepts them (kept on failure).
CAPTURE_SPOOL_DIR = _path("SCONES_CAPTURE_SPOOL_DIR", STATE_DIR / "capture-spool")

# ------------------------------ Workflow ------------------------------
# default: 0.93, the course's value. Inferences scoring below this go to the review branch.
CONFIDENCE_THRESHOLD = float(os.environ.get("SCONES_CONFIDENCE_THRESHOLD") or 0.93)
# default: scones-data. The bucket that holds the staged dataset and incoming images.
BUCKET = os.environ.get("SCONES_BUCKET") or "scones-data"
# default: CIFAR-100's official URL. Where `scones stage` downloads it when no --source is given.
DATASET_URL = (
    os.environ.get("SCONES_DATASET_URL")
    or "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
)
# default: the official tarball's MD5. The download at SCONES_DATASET_URL must have it.
DATASET_MD5 = os.environ.get("SCONES_DATASET_MD5") or "eb9058c3a382ffc7106e4002c42a8d85"
# default: 5. Seconds between `scones keep-deployed`'s checks (the compose deployer).
KEEP_INTERVAL = float(os.environ.get("SCONES_KEEP_INTERVAL") or 5)

# ------------------------------ Workflow: deploy, run, batch (helper E) ------------------------
# default: scones. Every deployed name starts with it: scones-classify-image, scones-review, ...
RESOURCE_PREFIX = os.environ.get("SCONES_RESOURCE_PREFIX") or "scones"
# default: empty = model.json "classes" of SCONES_MODEL_DIR. Comma-separated, in output order.
CLASS_NAMES = [
    n.strip() for n in (os.environ.get("SCONES_CLASS_NAMES") or "").split(",") if n.strip()
]
# default: bicycle -> bay-1, motorcycle -> bay-2. JSON map label -> loading bay (confident results).
LOADING_BAYS = (
    os.environ.get("SCONES_LOADING_BAYS") or '{"bicycle": "bay-1", "motorcycle": "bay-2"}'
)
# default: incoming/. Objects created under this prefix start the image workflow by themselves.
INCOMING_PREFIX = os.environ.get("SCONES_INCOMING_PREFIX") or "incoming/"
# default: uploads/. `scones run FILE` uploads here: no event rule, so no second execution.
UPLOAD_PREFIX = os.environ.get("SCONES_UPLOAD_PREFIX") or "uploads/"
# default: python3.12. The Lambda runtime of every function.
LAMBDA_RUNTIME = os.environ.get("SCONES_LAMBDA_RUNTIME") or "python3.12"
# default: 30. Lambda timeout in seconds (the endpoint call is most of it).
LAMBDA_TIMEOUT = int(os.environ.get("SCONES_LAMBDA_TIMEOUT") or 30)
# default: 256. Lambda memory in MB (AWS only; also buys CPU there).
LAMBDA_MEMORY = int(os.environ.get("SCONES_LAMBDA_MEMORY") or 256)
# default: empty = create scones-lambda-role. An existing role ARN for the functions (e.g. LabRole).
LAMBDA_ROLE_ARN = os.environ.get("SCONES_LAMBDA_ROLE_ARN") or ""
# default: empty = create scones-states-role. An existing role ARN for the state machines.
STATES_ROLE_ARN = os.environ.get("SCONES_STATES_ROLE_ARN") or ""
# default: empty = create scones-events-role. An existing role ARN EventBridge starts runs with.
EVENTS_ROLE_ARN = os.environ.get("SCONES_EVENTS_ROLE_ARN") or ""
# default: empty. An e-mail address subscribed to notifications (AWS asks it to confirm).
NOTIFY_EMAIL = os.environ.get("SCONES_NOTIFY_EMAIL") or ""
# default: empty. An HTTPS URL subscribed to notifications.
NOTIFY_HTTPS = os.environ.get("SCONES_NOTIFY_HTTPS") or ""
# default: 10. Child executions a batch runs at once (distributed Map MaxConcurrency).
BATCH_MAX_CONCURRENCY = int(os.environ.get("SCONES_BATCH_MAX_CONCURRENCY") or 10)
# default: 10. Percent of batch items allowed to fail outright before the whole batch fails.
BATCH_TOLERATED_FAILURE_PERCENT = float(
    os.environ.get("SCONES_BATCH_TOLERATED_FAILURE_PERCENT") or 10
)
# default: 300. Seconds `scones run` / `scones batch` wait for an execution to end.
RUN_TIMEOUT = float(os.environ.get("SCONES_RUN_TIMEOUT") or 300)

# ------------------------------ Cloud target: SageMaker (helper F, cloud/) ------------------------
# Used only when SCONES_TARGET=cloud. Data capture reuses the SCONES_CAPTURE_* settings above.
# default: empty (required for cloud). The SageMaker execution role (cloud/policies/).
SAGEMAKER_ROLE_ARN = os.environ.get("SCONES_SAGEMAKER_ROLE_ARN") or ""
# default: builtin. builtin = the image-classification algorithm; pytorch = local_model/train.py.
CLOUD_TRAINER = (os.environ.get("SCONES_CLOUD_TRAINER") or "builtin").lower()
# default: ml.p3.2xlarge, the course's training instance.
TRAINING_INSTANCE_TYPE = os.environ.get("SCONES_TRAINING_INSTANCE_TYPE") or "ml.p3.2xlarge"
# default: 3600. The training job's MaxRuntimeInSeconds (SageMaker stops it after that).
TRAINING_MAX_SECONDS = int(os.environ.get("SCONES_TRAINING_MAX_SECONDS") or 3600)
# default: ml.m5.xlarge, the course's endpoint instance.
ENDPOINT_INSTANCE_TYPE = os.environ.get("SCONES_ENDPOINT_INSTANCE_TYPE") or "ml.m5.xlarge"
# default: 1. Instances behind the endpoint.
ENDPOINT_INSTANCE_COUNT = int(os.environ.get("SCONES_ENDPOINT_INSTANCE_COUNT") or 1)
# default: datasets/bicycle-motorcycle/, where `scones stage` puts the default classes.
CLOUD_DATASET_PREFIX = (
    os.environ.get("SCONES_CLOUD_DATASET_PREFIX") or "datasets/bicycle-motorcycle/"
)
# default: models/image_model/, the course's output path. Training artifacts go under it.
CLOUD_OUTPUT_PREFIX = os.environ.get("SCONES_CLOUD_OUTPUT_PREFIX") or "models/image_model/"
# default: empty = the built-in algorithm's image. ECR URI of docker/Dockerfile.model, for ONNX.
CLOUD_MODEL_IMAGE = os.environ.get("SCONES_CLOUD_MODEL_IMAGE") or ""


def emulator_url() -> str:
    """The emulator's gateway URL, e.g. http://127.0.0.1:4566."""
    return f"http://{EMULATOR_HOST}:{EMULATOR_PORT}"


def model_url() -> str:
    """The local model server's base URL, e.g. http://127.0.0.1:8080."""
    return f"http://{MODEL_HOST}:{MODEL_PORT}"


def apply_target_env() -> None:
    """Point boto3 at the emulator when the target is local (unless the user set an endpoint).

    Cloud mode leaves the environment alone: boto3 then finds real AWS and the user's credentials.
    """
    if TARGET != "local":
        return
    os.environ.setdefault("AWS_ENDPOINT_URL", emulator_url())
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")  # LocalStack accepts any key
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
