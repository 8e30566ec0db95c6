"""Every setting of scones, read once from the environment (all prefixed SCONES_) and validated."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cloud.settings import CloudSettings
from scones import PROJECT_ROOT, SconesError


class ConfigError(SconesError):
    """A SCONES_* variable holds a value scones cannot use; the CLI prints it and exits 2."""


# Value shapes shared by several settings; `allowed` is what the error message offers instead.
Port = Annotated[int, Field(ge=1, le=65535)]
Names = Annotated[list[str], NoDecode]  # comma-separated in the environment, not JSON
SAGEMAKER_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
ROLE_ARN = r"^$|^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$"
INSTANCE_TYPE = r"^ml\.[a-z0-9-]+\.[a-z0-9]+$"


def _allowed(text: str) -> Any:
    return Field(json_schema_extra={"allowed": text})


class Settings(BaseSettings):
    """The SCONES_* variables, each checked against the values it allows when it is read."""

    model_config = SettingsConfigDict(
        env_prefix="SCONES_", env_ignore_empty=True, extra="ignore", validate_default=True
    )

    # ------------------------------ Target and state ------------------------------
    # default: local. "local" runs everything against the emulator on this machine; "cloud" uses
    # AWS. Nothing else: a typo must never send requests to real AWS.
    target: Literal["local", "cloud"] = "local"
    # default: <repo>/.scones. Holds the emulator venv, pids, logs, emulator state and caches.
    state_dir: Path = PROJECT_ROOT / ".scones"
    # default: local: AWS_DEFAULT_REGION, else us-east-1; cloud: boto3's own chain (AWS_REGION,
    # AWS_DEFAULT_REGION, the AWS_PROFILE's region in ~/.aws/config). Region of every AWS call.
    region: Annotated[str | None, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")] = None

    # ------------------------------ Emulator (LocalStack core) ------------------------------
    # default: 127.0.0.1. LocalStack's gateway binds here only (loopback, never 0.0.0.0).
    emulator_host: str = "127.0.0.1"
    # default: 4566, LocalStack's usual port.
    emulator_port: Port = 4566
    # default: <state>/localstack-venv. The emulator's own virtual environment.
    emulator_venv: Path | None = None
    # default: empty = search. A Python >= 3.12 for LocalStack core 2026.3.0; else 3.11 + 4.9.2.
    emulator_python: str = ""
    # default: s3,lambda,... The AWS services the emulator starts (and those `scones import`
    # enabled).
    emulator_services: str = "s3,lambda,stepfunctions,sns,sqs,events,iam,sts,logs"
    # default: 90. Seconds `scones up` waits for the emulator to report healthy (counted from
    # its start, after a first start has installed the emulator's venv).
    emulator_start_timeout: Annotated[float, Field(gt=0)] = 90
    # default: 000000000000, LocalStack's default account for test credentials.
    account_id: Annotated[str, Field(pattern=r"^\d{12}$"), _allowed("12 digits")] = "000000000000"

    # ------------------------------ Model server ------------------------------
    # default: 127.0.0.1. The local SageMaker-compatible endpoint binds here.
    model_host: str = "127.0.0.1"
    # default: 8080, the port SageMaker containers listen on.
    model_port: Port = 8080
    # default: <repo>/local_model/default. The model directory (model.onnx + model.json) served.
    model_dir: Path = PROJECT_ROOT / "local_model" / "default"
    # default: scones-classifier. The endpoint name our Lambdas call.
    endpoint_name: Annotated[
        str,
        Field(pattern=SAGEMAKER_NAME),
        _allowed("a SageMaker name: letters, digits and single hyphens, at most 63 characters"),
    ] = "scones-classifier"

    # ------------------------------ Model server: serving and data capture ---------------------
    # default: empty. Comma-separated extra endpoint names the server also answers to (runtime API).
    endpoint_aliases: Names = []
    # default: AllTraffic, the SageMaker SDK's variant name (x-Amzn-Invoked-Production-Variant).
    model_variant: str = "AllTraffic"
    # default: 32. Most images one ONNX run takes when concurrent requests are micro-batched.
    model_max_batch: Annotated[int, Field(ge=1)] = 32
    # default: 2. Milliseconds a batch waits for requests still being decoded; never when idle.
    model_max_wait_ms: Annotated[float, Field(ge=0)] = 2
    # default: 2 (both cores). onnxruntime intra-op threads, no spinning: they yield the cores to
    # HTTP and decoding between runs; 2 cuts a lone image's latency by about a third against 1.
    model_intra_op_threads: Annotated[int, Field(ge=1)] = 2
    # default: 2. Threads decoding and resizing images off the event loop.
    model_decode_threads: Annotated[int, Field(ge=1)] = 2
    # default: 6291456 (6 MB), SageMaker's InvokeEndpoint payload limit, in bytes.
    model_max_payload: Annotated[int, Field(ge=1)] = 6 * 1024 * 1024
    # default: 40000000. Decoded pixels above this are refused as a decompression bomb.
    model_max_pixels: Annotated[int, Field(ge=1)] = 40_000_000
    # default: 0 (off). 1 captures invocations like SageMaker's DataCaptureConfig EnableCapture.
    capture_enabled: Annotated[bool, _allowed("1 or 0 (true/false, yes/no, on/off)")] = False
    # default: empty = s3://<SCONES_BUCKET>/data_capture. DataCaptureConfig DestinationS3Uri.
    capture_destination: Annotated[
        str,
        Field(pattern=r"^$|^s3://[a-z0-9][a-z0-9.-]+[a-z0-9](/.*)?$"),
        _allowed("s3://bucket/prefix"),
    ] = ""
    # default: 100. DataCaptureConfig InitialSamplingPercentage: share of requests captured (0-100).
    capture_sampling: Annotated[float, Field(ge=0, le=100)] = 100
    # default: InputAndOutput. CaptureMode: Input, Output or InputAndOutput.
    capture_mode: Literal["Input", "Output", "InputAndOutput"] = "InputAndOutput"
    # default: application/json. CaptureContentTypeHeader JsonContentTypes (captured as JSON text).
    capture_json_types: str = "application/json"
    # default: text/csv. CaptureContentTypeHeader CsvContentTypes; anything else is BASE64.
    capture_csv_types: str = "text/csv"
    # default: 1048576. A capture file is written once its buffer holds this many bytes.
    capture_flush_bytes: Annotated[int, Field(ge=1)] = 1024 * 1024
    # default: 5. ... or once its oldest record is this many seconds old.
    capture_flush_seconds: Annotated[float, Field(gt=0)] = 5
    # default: <state>/capture-spool. Capture files wait here until S3 accepts them (kept on
    # failure).
    capture_spool_dir: Path | None = None

    # ------------------------------ Workflow ------------------------------
    # default: 0.93, the course's value. Inferences scoring below this go to the review branch.
    confidence_threshold: Annotated[float, Field(ge=0, le=1)] = 0.93
    # default: scones-data. The bucket that holds the staged dataset and incoming images.
    bucket: Annotated[
        str,
        Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
        _allowed("an S3 bucket name: 3-63 lower-case letters, digits, dots and hyphens"),
    ] = "scones-data"
    # default: CIFAR-100's official URL. Where `scones stage` downloads it without --source.
    dataset_url: Annotated[
        str, Field(pattern=r"^(https?|file)://\S+$"), _allowed("an http(s):// or file:// URL")
    ] = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    # default: the official tarball's MD5. The download at SCONES_DATASET_URL must have it.
    dataset_md5: Annotated[
        str, Field(pattern=r"^[0-9a-f]{32}$"), _allowed("32 lower-case hex digits")
    ] = "eb9058c3a382ffc7106e4002c42a8d85"
    # default: 5. Seconds between `scones keep-deployed`'s checks (the compose deployer).
    keep_interval: Annotated[float, Field(gt=0)] = 5

    # ------------------------------ Workflow: deploy, run, batch ------------------------------
    # default: scones. Every deployed name starts with it: scones-classify-image, scones-review, ...
    resource_prefix: Annotated[
        str,
        Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,31}$"),
        _allowed("1-32 letters, digits and hyphens (AWS name limits leave room for the suffixes)"),
    ] = "scones"
    # default: empty = model.json "classes" of SCONES_MODEL_DIR. Comma-separated, in output order.
    class_names: Names = []
    # default: bicycle -> bay-1, motorcycle -> bay-2. JSON map label -> loading bay (confident
    # results).
    loading_bays: Annotated[str, _allowed('a JSON object like {"bicycle": "bay-1"}')] = (
        '{"bicycle": "bay-1", "motorcycle": "bay-2"}'
    )
    # default: incoming/. Objects created under this prefix start the image workflow by themselves.
    incoming_prefix: str = "incoming/"
    # default: uploads/. `scones run FILE` uploads here: no event rule, so no second execution.
    upload_prefix: str = "uploads/"
    # default: python3.12. The Lambda runtime of every function.
    lambda_runtime: Annotated[str, Field(pattern=r"^python3\.\d+$"), _allowed("python3.X")] = (
        "python3.12"
    )
    # default: 30. Lambda timeout in seconds (the endpoint call is most of it); AWS allows 1-900.
    lambda_timeout: Annotated[int, Field(ge=1, le=900)] = 30
    # default: 256. Lambda memory in MB (AWS only; also buys CPU there); AWS allows 128-10240.
    lambda_memory: Annotated[int, Field(ge=128, le=10240)] = 256
    # default: empty = create scones-lambda-role. An existing role ARN for the functions (LabRole).
    lambda_role_arn: Annotated[str, Field(pattern=ROLE_ARN), _allowed("an IAM role ARN")] = ""
    # default: empty = create scones-states-role. An existing role ARN for the state machines.
    states_role_arn: Annotated[str, Field(pattern=ROLE_ARN), _allowed("an IAM role ARN")] = ""
    # default: empty = create scones-events-role. An existing role ARN EventBridge starts runs with.
    events_role_arn: Annotated[str, Field(pattern=ROLE_ARN), _allowed("an IAM role ARN")] = ""
    # default: empty. An e-mail address subscribed to notifications (AWS asks it to confirm).
    notify_email: Annotated[str, Field(pattern=r"^$|^[^@\s]+@[^@\s]+$"), _allowed("an address")] = (
        ""
    )
    # default: empty. An HTTPS URL subscribed to notifications.
    notify_https: Annotated[
        str, Field(pattern=r"^$|^https://\S+$"), _allowed("an https:// URL")
    ] = ""
    # default: 10. Child executions a batch runs at once (distributed Map MaxConcurrency; 0 = no
    # limit).
    batch_max_concurrency: Annotated[int, Field(ge=0, le=10000)] = 10
    # default: 10. Percent of batch items allowed to fail outright before the whole batch fails.
    batch_tolerated_failure_percent: Annotated[float, Field(ge=0, le=100)] = 10
    # default: 300. Seconds `scones run` / `scones batch` wait for an execution to end.
    run_timeout: Annotated[float, Field(gt=0)] = 300

    # ------------------------------ Cloud target: SageMaker (cloud/) ------------------------------
    # Used only when SCONES_TARGET=cloud. Data capture reuses the SCONES_CAPTURE_* settings above.
    # default: empty (required for cloud). The SageMaker execution role (cloud/policies/).
    sagemaker_role_arn: Annotated[str, Field(pattern=ROLE_ARN), _allowed("an IAM role ARN")] = ""
    # default: builtin. builtin = the image-classification algorithm; pytorch =
    # local_model/train.py run by SageMaker's PyTorch container.
    cloud_trainer: Literal["builtin", "pytorch"] = "builtin"
    # default: ml.p3.2xlarge, the course's training instance.
    training_instance_type: Annotated[
        str, Field(pattern=INSTANCE_TYPE), _allowed("a SageMaker instance type like ml.m5.xlarge")
    ] = "ml.p3.2xlarge"
    # default: 3600. The training job's MaxRuntimeInSeconds (SageMaker stops it after that; at
    # most 28 days).
    training_max_seconds: Annotated[int, Field(ge=1, le=28 * 24 * 3600)] = 3600
    # default: ml.m5.xlarge, the course's endpoint instance.
    endpoint_instance_type: Annotated[
        str, Field(pattern=INSTANCE_TYPE), _allowed("a SageMaker instance type like ml.m5.xlarge")
    ] = "ml.m5.xlarge"
    # default: 1. Instances behind the endpoint.
    endpoint_instance_count: Annotated[int, Field(ge=1)] = 1
    # default: datasets/bicycle-motorcycle/, where `scones stage` puts the default classes.
    cloud_dataset_prefix: str = "datasets/bicycle-motorcycle/"
    # default: models/image_model/, the course's output path. Training artifacts go under it.
    cloud_output_prefix: str = "models/image_model/"
    # default: empty = the built-in algorithm's image. ECR URI of docker/Dockerfile.model, for ONNX.
    cloud_model_image: str = ""

    @field_validator("target", "cloud_trainer", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("endpoint_aliases", "class_names", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return (
            [n.strip() for n in value.split(",") if n.strip()] if isinstance(value, str) else value
        )

    @field_validator("state_dir", "model_dir", "emulator_venv", "capture_spool_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @field_validator("loading_bays")
    @classmethod
    def _json_object(cls, value: str) -> str:
        try:
            bays = json.loads(value)
        except ValueError as err:
            raise ValueError(f"not JSON ({err})") from err
        if not isinstance(bays, dict) or not all(isinstance(v, str) for v in bays.values()):
            raise ValueError("not a JSON object of label -> bay name")
        return value

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        self.emulator_venv = self.emulator_venv or self.state_dir / "localstack-venv"
        self.capture_spool_dir = self.capture_spool_dir or self.state_dir / "capture-spool"
        if self.region is None:
            self.region = _default_region(self.target)
        return self


def _default_region(target: str) -> str:
    """Locally AWS_DEFAULT_REGION or us-east-1; in the cloud, boto3's chain, never a guess."""
    if target == "local":
        return os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    import boto3  # only here: the chain reads AWS_REGION, AWS_DEFAULT_REGION and the profile

    region = boto3.session.Session().region_name
    if not region:
        raise ValueError(
            "SCONES_TARGET=cloud found no AWS region: set one in your profile (`aws configure`),"
            " AWS_REGION or AWS_DEFAULT_REGION, or SCONES_REGION"
        )
    return region


def _allowed_values(name: str) -> str:
    """What a setting accepts, in words, for the error message."""
    info = Settings.model_fields[name]
    extra = info.json_schema_extra
    if isinstance(extra, dict) and "allowed" in extra:
        return str(extra["allowed"])
    annotation = info.annotation
    if get_origin(annotation) is Literal:
        return " or ".join(get_args(annotation))
    limits = [
        f"{sign} {getattr(m, attr)}"
        for m in info.metadata
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
        if getattr(m, attr, None) is not None
    ]
    kind = {int: "an integer", float: "a number", bool: "1 or 0"}.get(annotation, "a value")
    return " ".join([kind, " and ".join(limits)]).strip()


def _one_line(err: ValidationError) -> str:
    problems = []
    for e in err.errors():
        if e["loc"]:
            name = str(e["loc"][0])
            value = os.environ.get(f"SCONES_{name.upper()}", e["input"])
            problems.append(f"SCONES_{name.upper()}={value!r}: use {_allowed_values(name)}")
        else:  # a check across settings (the cloud region)
            problems.append(str(e["msg"]).removeprefix("Value error, "))
    return "; ".join(problems)


def read() -> Settings:
    """The settings in the environment now; ConfigError names every variable that is wrong."""
    try:
        return Settings()
    except ValidationError as err:
        raise ConfigError(_one_line(err)) from None


def _publish(settings: Settings) -> None:
    """Each setting as a module attribute, upper case: ``config.MODEL_PORT``."""
    globals().update({name.upper(): value for name, value in settings})


# Read once, at import. A bad value does not stop the import (the CLI must be able to print it):
# every later use of a setting raises the one-line ConfigError instead.
try:
    _publish(read())
    _ERROR: ConfigError | None = None
except ConfigError as _err:
    _ERROR = _err


def __getattr__(name: str) -> Any:
    if _ERROR is not None and name.lower() in Settings.model_fields:
        raise _ERROR
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check() -> None:
    """Raise the ConfigError of an invalid environment (the CLI calls it before any command)."""
    if _ERROR is not None:
        raise _ERROR


# The functions below read settings through the module, as callers do: a value a test or
# `scones bench stack` patched is the one they see, and a bad one raises its ConfigError.
_THIS = sys.modules[__name__]


def emulator_url() -> str:
    """The emulator's gateway URL, e.g. http://127.0.0.1:4566."""
    return f"http://{_THIS.EMULATOR_HOST}:{_THIS.EMULATOR_PORT}"


def model_url() -> str:
    """The local model server's base URL, e.g. http://127.0.0.1:8080."""
    return f"http://{_THIS.MODEL_HOST}:{_THIS.MODEL_PORT}"


def apply_target_env() -> None:
    """Point boto3 at the emulator when the target is local (unless the user set an endpoint).

    Cloud mode leaves the environment alone: boto3 then finds real AWS and the user's credentials.
    """
    if _THIS.TARGET == "cloud":
        return
    os.environ.setdefault("AWS_ENDPOINT_URL", emulator_url())
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")  # LocalStack accepts any key
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", _THIS.REGION)


def cloud_settings():
    """The cloud target's settings (cloud.settings.CloudSettings) from the SCONES_* variables."""

    def split(value: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in value.split(",") if v.strip())

    return CloudSettings(
        region=_THIS.REGION,
        bucket=_THIS.BUCKET,
        role_arn=_THIS.SAGEMAKER_ROLE_ARN,
        endpoint_name=_THIS.ENDPOINT_NAME,
        trainer=_THIS.CLOUD_TRAINER,
        training_instance_type=_THIS.TRAINING_INSTANCE_TYPE,
        training_max_seconds=_THIS.TRAINING_MAX_SECONDS,
        endpoint_instance_type=_THIS.ENDPOINT_INSTANCE_TYPE,
        endpoint_instance_count=_THIS.ENDPOINT_INSTANCE_COUNT,
        variant=_THIS.MODEL_VARIANT,
        dataset_prefix=_THIS.CLOUD_DATASET_PREFIX,
        output_prefix=_THIS.CLOUD_OUTPUT_PREFIX,
        capture_destination=_THIS.CAPTURE_DESTINATION,
        capture_sampling=_THIS.CAPTURE_SAMPLING,
        capture_mode=_THIS.CAPTURE_MODE,
        capture_json_types=split(_THIS.CAPTURE_JSON_TYPES),
        capture_csv_types=split(_THIS.CAPTURE_CSV_TYPES),
        model_image=_THIS.CLOUD_MODEL_IMAGE,
    )
