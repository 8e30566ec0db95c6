"""SageMaker training: the built-in image-classification algorithm, or local_model/train.py.

The built-in job is the course's: four channels (train, validation, train_lst, validation_lst) of
PNGs and .lst manifests, content type application/x-image, hyperparameters image_shape 3,32,32,
num_classes and num_training_samples counted from train.lst
(https://docs.aws.amazon.com/sagemaker/latest/dg/image-classification.html). The data is the
prefix `scones stage` wrote; validation must be carved from train (``--validation-fraction``):
the test split is never used for training or validation.

The PyTorch job runs our own training script in the Deep Learning Container, as the SDK's
``PyTorch`` estimator does: the source is uploaded as sourcedir.tar.gz and named by the
``sagemaker_program`` / ``sagemaker_submit_directory`` hyperparameters.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import tarfile
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloud import CloudError
from cloud.clients import CloudClients
from cloud.images import image_classification_uri, pytorch_training_uri
from cloud.settings import CloudSettings

LOG = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
IMAGE_CONTENT_TYPE = "application/x-image"  # the course uses it for the .lst channels too
# The course's hyperparameters (image_shape; num_classes and num_training_samples are counted), plus
# the algorithm's defaults for the rest written out, so the job's settings are visible here.
# Everything else (num_layers 152, optimizer sgd, ...) is the algorithm's default, as in the course.
BUILTIN_HYPERPARAMETERS: dict[str, str] = {
    "image_shape": "3,32,32",  # channels,height,width of the CIFAR images
    "epochs": "30",  # passes over train (algorithm default)
    "mini_batch_size": "32",  # images per step (algorithm default)
    "learning_rate": "0.1",  # SGD step size (algorithm default)
}
# What the PyTorch job's entry point is, relative to the uploaded source directory: the toolkit
# runs `python local_model/train.py --name value ...` in /opt/ml/code (its __main__ section).
PYTORCH_PROGRAM = "local_model/train.py"
# The files sourcedir.tar.gz holds: the entry point and what it imports, nothing else (no
# server, no scones core, no committed model). tests/local_model/test_train_sagemaker.py runs
# the script from an unpacked copy, so a missing import fails there.
SOURCE_FILES = (
    "local_model/__init__.py",
    PYTORCH_PROGRAM,
    "local_model/preprocess.py",
    "local_model/lst.py",
)
DATASET_CHANNEL = "dataset"  # the PyTorch job reads the staged folder from SM_CHANNEL_DATASET
POLL_SECONDS = 30.0  # DescribeTrainingJob interval while waiting


class DatasetNotStaged(CloudError):
    """The staged dataset is missing from S3 or lacks a split the job needs."""


class TrainingFailed(CloudError):
    """The training job ended Failed or Stopped, or did not end in time."""


@dataclass(frozen=True)
class TrainingResult:
    """A finished (or started) training job."""

    job_name: str
    status: str  # InProgress, Completed, Failed, Stopped
    model_data_url: str | None  # s3://.../output/model.tar.gz once Completed
    image_uri: str  # the image that serves this artifact (built-in jobs: the same algorithm)


def job_name(trainer: str, now: datetime | None = None) -> str:
    """A unique, sortable training job name: scones-ic-20250101-120000 (63 characters at most)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"scones-{'ic' if trainer == 'builtin' else 'pt'}-{stamp}"


@dataclass(frozen=True)
class LstManifest:
    """An .lst manifest as the image-classification algorithm reads it (index, label, path)."""

    rows: list[tuple[int, int, str]]

    @property
    def num_classes(self) -> int:
        return len({label for _, label, _ in self.rows})


def read_lst(s3: Any, bucket: str, key: str) -> LstManifest:
    """An .lst manifest in S3, checked as the algorithm documents it: tab-separated image index
    (unique), class label (0, 1, ... with none skipped) and relative path, one image a line.
    https://docs.aws.amazon.com/sagemaker/latest/dg/image-classification.html#IC-inputoutput
    """
    from botocore.exceptions import ClientError

    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    except ClientError as err:
        if err.response["Error"]["Code"] in ("NoSuchKey", "404", "NoSuchBucket"):
            raise DatasetNotStaged(
                f"s3://{bucket}/{key} is missing; run `scones stage --validation-fraction 0.1` "
                "with SCONES_TARGET=cloud first"
            ) from err
        raise
    rows = []
    for number, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            index, label, path = int(fields[0]), int(float(fields[1])), fields[2].strip()
            if len(fields) != 3 or not path:
                raise ValueError(line)
        except (ValueError, IndexError) as err:
            raise DatasetNotStaged(
                f"s3://{bucket}/{key}:{number} is not index<TAB>label<TAB>path: {line!r}"
            ) from err
        rows.append((index, label, path))
    if len({index for index, _, _ in rows}) != len(rows):
        raise DatasetNotStaged(f"s3://{bucket}/{key}: image indices repeat; each must be unique")
    labels = {label for _, label, _ in rows}
    if labels != set(range(len(labels))):
        raise DatasetNotStaged(
            f"s3://{bucket}/{key}: class labels {sorted(labels)} are not 0..{len(labels) - 1}"
        )
    return LstManifest(rows)


def _channel(name: str, uri: str, content_type: str | None) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "CompressionType": "None",
        "RecordWrapperType": "None",
    }
    if content_type:
        channel["ContentType"] = content_type
    return channel


def _common_request(
    settings: CloudSettings, name: str, image_uri: str, channels: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image_uri, "TrainingInputMode": "File"},
        "RoleArn": settings.require_role(),
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": settings.s3_uri(settings.output_prefix)},
        "ResourceConfig": {
            "InstanceType": settings.training_instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": settings.training_volume_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.training_max_seconds},
        "Tags": settings.tag_list(),
    }


def builtin_training_request(
    settings: CloudSettings,
    name: str,
    num_training_samples: int,
    image_uri: str,
    hyperparameters: dict[str, str] | None = None,
    num_classes: int = 2,
) -> dict[str, Any]:
    """CreateTrainingJob arguments for the built-in image-classification algorithm."""
    prefix = settings.dataset_prefix
    channels = [
        _channel("train", settings.s3_uri(prefix, "train/"), IMAGE_CONTENT_TYPE),
        _channel("validation", settings.s3_uri(prefix, "validation/"), IMAGE_CONTENT_TYPE),
        _channel("train_lst", settings.s3_uri(prefix, "train.lst"), IMAGE_CONTENT_TYPE),
        _channel("validation_lst", settings.s3_uri(prefix, "validation.lst"), IMAGE_CONTENT_TYPE),
    ]
    request = _common_request(settings, name, image_uri, channels)
    request["HyperParameters"] = {
        **BUILTIN_HYPERPARAMETERS,
        "num_classes": str(num_classes),
        "num_training_samples": str(num_training_samples),
        **(hyperparameters or {}),
    }
    return request


def pytorch_training_request(
    settings: CloudSettings,
    name: str,
    image_uri: str,
    source_uri: str,
    hyperparameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """CreateTrainingJob arguments for local_model/train.py in the PyTorch training container.

    ``hyperparameters``: train.py's HYP names (epochs, image_shape, ...); the toolkit passes each
    to the script as ``--name value``.
    """
    channels = [_channel(DATASET_CHANNEL, settings.s3_uri(settings.dataset_prefix), None)]
    request = _common_request(settings, name, image_uri, channels)
    # The training toolkit JSON-decodes each value, as the SDK's Framework estimator encodes them.
    request["HyperParameters"] = {
        **{key: json.dumps(value) for key, value in (hyperparameters or {}).items()},
        "sagemaker_program": json.dumps(PYTORCH_PROGRAM),
        "sagemaker_submit_directory": json.dumps(source_uri),
        "sagemaker_region": json.dumps(settings.region),
        "sagemaker_container_log_level": json.dumps(logging.INFO),
    }
    # The toolkit runs `python local_model/train.py` in /opt/ml/code: make our packages importable.
    request["Environment"] = {"PYTHONPATH": "/opt/ml/code"}
    return request


def _train_requirements(root: Path) -> str:
    """requirements.txt for the container: the `train` extra, less torch (the image has it)."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = project.get("optional-dependencies", {}).get("train", [])
    return "".join(f"{req}\n" for req in wanted if not req.lower().startswith("torch"))


def package_source(root: Path | None = None) -> bytes:
    """sourcedir.tar.gz: the training script, its imports and requirements.txt, byte-stable."""
    root = root or PROJECT_ROOT
    program = root / PYTORCH_PROGRAM
    if not program.is_file():
        raise DatasetNotStaged(f"{program} is missing: the PyTorch trainer runs it")
    buffer = io.BytesIO()
    # gzip mtime 0 and tar mtimes 0: the same sources give the same bytes (and the same S3 ETag).
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):

        def add(arcname: str, data: bytes) -> None:
            info = tarfile.TarInfo(arcname)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))

        for relative in SOURCE_FILES:
            add(relative, (root / relative).read_bytes())
        add("requirements.txt", _train_requirements(root).encode())
    return buffer.getvalue()


def start_training(
    clients: CloudClients,
    settings: CloudSettings,
    name: str | None = None,
    use_sdk: bool = True,
    hyperparameters: dict[str, Any] | None = None,
) -> TrainingResult:
    """Create the training job the settings ask for (``settings.trainer``); do not wait.

    ``hyperparameters`` override the job's (both trainers name them like the algorithm).
    """
    name = name or job_name(settings.trainer)
    if settings.trainer == "pytorch" and not settings.model_image:
        raise CloudError(
            "the PyTorch trainer's ONNX model is served by our own container: push "
            "docker/Dockerfile.model to ECR and set SCONES_CLOUD_MODEL_IMAGE to its URI"
        )
    if settings.trainer == "builtin":
        train_lst = read_lst(clients.s3, settings.bucket, f"{settings.dataset_prefix}train.lst")
        read_lst(clients.s3, settings.bucket, f"{settings.dataset_prefix}validation.lst")
        image = image_classification_uri(settings.region, use_sdk=use_sdk)
        request = builtin_training_request(
            settings,
            name,
            len(train_lst.rows),
            image,
            {k: str(v) for k, v in (hyperparameters or {}).items()},
            num_classes=train_lst.num_classes,
        )
        serving_image = image  # the algorithm's image also serves its own MXNet artifacts
    else:
        read_lst(clients.s3, settings.bucket, f"{settings.dataset_prefix}train.lst")
        image = pytorch_training_uri(
            settings.region,
            settings.pytorch_version,
            settings.pytorch_py_version,
            settings.training_instance_type,
            use_sdk=use_sdk,
        )
        key = f"{settings.output_prefix}{name}/source/sourcedir.tar.gz"
        clients.s3.put_object(Bucket=settings.bucket, Key=key, Body=package_source())
        request = pytorch_training_request(
            settings, name, image, f"s3://{settings.bucket}/{key}", hyperparameters
        )
        serving_image = settings.model_image
    LOG.info("creating training job %s with image %s", name, image)
    clients.sagemaker.create_training_job(**request)
    return TrainingResult(name, "InProgress", None, serving_image)


def wait_for_training(
    clients: CloudClients,
    started: TrainingResult,
    timeout_seconds: float,
    poll_seconds: float = POLL_SECONDS,
) -> TrainingResult:
    """Poll DescribeTrainingJob until the job ends; the artifact URL when it Completed."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        job = clients.sagemaker.describe_training_job(TrainingJobName=started.job_name)
        status = job["TrainingJobStatus"]
        LOG.info("training job %s: %s (%s)", started.job_name, status, job.get("SecondaryStatus"))
        if status == "Completed":
            url = job["ModelArtifacts"]["S3ModelArtifacts"]
            return TrainingResult(started.job_name, status, url, started.image_uri)
        if status in ("Failed", "Stopped"):
            reason = job.get("FailureReason", "no reason given")
            raise TrainingFailed(
                f"training job {started.job_name} {status.lower()}: {reason}; see its CloudWatch "
                f"logs (/aws/sagemaker/TrainingJobs)"
            )
        if time.monotonic() + poll_seconds > deadline:
            raise TrainingFailed(
                f"training job {started.job_name} still {status} after {timeout_seconds:.0f} s; "
                "it keeps running: wait again or stop it with `scones cleanup`"
            )
        time.sleep(poll_seconds)


def train(
    clients: CloudClients,
    settings: CloudSettings,
    wait: bool = True,
    name: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
) -> TrainingResult:
    """Start a training job and (by default) wait for its model artifact."""
    started = start_training(clients, settings, name=name, hyperparameters=hyperparameters)
    if not wait:
        return started
    # The job's own MaxRuntimeInSeconds plus start-up and upload time.
    return wait_for_training(clients, started, settings.training_max_seconds + 1800)
