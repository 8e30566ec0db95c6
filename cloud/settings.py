"""The cloud target's settings: what the caller read (scones.config.cloud_settings), checked."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cloud import CloudError

# SageMaker resource names: up to 63 characters, alphanumerics and single hyphens.
NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
TRAINERS = ("builtin", "pytorch")


class CloudSettingsError(CloudError):
    """A cloud setting is missing or malformed."""


@dataclass(frozen=True)
class CloudSettings:
    """Everything the cloud functions need; the CLI fills it from SCONES_* variables."""

    region: str
    bucket: str
    role_arn: str  # the SageMaker execution role (cloud/policies/sagemaker-execution-role.json)
    endpoint_name: str = "scones-classifier"
    trainer: str = "builtin"  # "builtin" image-classification algorithm, or "pytorch" (train.py)
    training_instance_type: str = "ml.p3.2xlarge"  # the course's training instance
    training_volume_gb: int = 30  # GB of EBS for the training instance
    training_max_seconds: int = 3600  # StoppingCondition MaxRuntimeInSeconds
    endpoint_instance_type: str = "ml.m5.xlarge"  # the course's endpoint instance
    endpoint_instance_count: int = 1
    variant: str = "AllTraffic"  # production variant; data capture files are grouped under it
    dataset_prefix: str = "datasets/bicycle-motorcycle/"  # where `scones stage` put the data
    output_prefix: str = "models/image_model/"  # the course's s3_output_location
    capture_destination: str = ""  # empty = s3://<bucket>/data_capture
    capture_sampling: float = 100.0  # InitialSamplingPercentage
    capture_mode: str = "InputAndOutput"  # Input, Output or InputAndOutput
    capture_json_types: tuple[str, ...] = ("application/json",)
    capture_csv_types: tuple[str, ...] = ("text/csv",)
    model_image: str = ""  # ECR URI of docker/Dockerfile.model; empty = the built-in algorithm's
    pytorch_version: str = "2.10.0"  # framework image for the "pytorch" trainer
    pytorch_py_version: str = "py313"
    tags: tuple[tuple[str, str], ...] = field(default=(("project", "scones"),))

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.endpoint_name) or len(self.endpoint_name) > 54:
            # 54: room for the "-<8 hex>" suffix of model and endpoint-config names
            raise CloudSettingsError(
                f"SCONES_ENDPOINT_NAME={self.endpoint_name!r} is not a valid SageMaker name "
                "(letters, digits, single hyphens, at most 54 characters)"
            )
        if self.trainer not in TRAINERS:
            raise CloudSettingsError(
                f"SCONES_CLOUD_TRAINER={self.trainer!r}: use one of {', '.join(TRAINERS)}"
            )
        if not 0 < self.capture_sampling <= 100:
            raise CloudSettingsError(
                f"SCONES_CAPTURE_SAMPLING={self.capture_sampling}: use a percentage in (0, 100]"
            )
        if self.capture_mode not in ("Input", "Output", "InputAndOutput"):
            raise CloudSettingsError(
                f"SCONES_CAPTURE_MODE={self.capture_mode!r}: use Input, Output or InputAndOutput"
            )

    def require_role(self) -> str:
        """The execution role ARN, or a named error saying how to set it."""
        if not ROLE_ARN_RE.match(self.role_arn):
            raise CloudSettingsError(
                f"SCONES_SAGEMAKER_ROLE_ARN={self.role_arn!r} is not an IAM role ARN; create the "
                "role from cloud/policies/sagemaker-execution-role*.json and set its ARN"
            )
        return self.role_arn

    @property
    def capture_uri(self) -> str:
        """DataCaptureConfig DestinationS3Uri: the same default the local server uses."""
        return (self.capture_destination or f"s3://{self.bucket}/data_capture").rstrip("/")

    def s3_uri(self, *parts: str) -> str:
        """s3://<bucket>/<parts joined>, keeping a trailing slash of the last part."""
        key = "/".join(p.strip("/") for p in parts if p.strip("/"))
        tail = "/" if parts and parts[-1].endswith("/") else ""
        return f"s3://{self.bucket}/{key}{tail}"

    def tag_list(self) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.tags]
