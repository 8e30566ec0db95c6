"""The least-privilege IAM policies of the cloud target, rendered from cloud/policies/*.json.

Each role has a permissions policy ``<role>.json`` and a trust policy ``<role>.trust.json``:

- ``sagemaker-execution-role``: what training jobs and endpoints do (read the staged data, write
  artifacts and data capture, pull our serving image, write logs and metrics)
- ``lambda-role``: the Lambdas (own logs, read images from the bucket, invoke our endpoint)
- ``stepfunctions-role``: the state machines (invoke our Lambdas, notify, queue for review,
  run the batch's child executions)
- ``events-role``: EventBridge starting the workflow for a new image
- ``operator.json``: the person or CI running ``scones`` with SCONES_TARGET=cloud
- ``notifications-queue.resource.json``: the SQS queue's resource policy (only our topic sends)

``scones deploy`` attaches exactly these documents, on the emulator and on AWS: the policy the
tests check is the one attached.

The files hold ``${Placeholder}`` names (see PLACEHOLDERS) and no account data or credentials;
``render_policy`` fills them in. Role names follow ``scones deploy``: ``<NamePrefix>-lambda-role``,
``<NamePrefix>-states-role``, ``<NamePrefix>-events-role``, plus ``<NamePrefix>-sagemaker-role``;
operator.json may pass each only to its own service.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cloud import CloudError
from cloud.settings import CloudSettings

POLICY_DIR = Path(__file__).resolve().parent / "policies"
PLACEHOLDERS = (
    "Partition",  # aws, aws-cn or aws-us-gov
    "Region",
    "AccountId",
    "Bucket",
    "EndpointName",  # lower case: SageMaker ARNs hold names in lower case
    "NamePrefix",  # our resources' name prefix: roles, functions, state machines, ECR, jobs
    "DatasetPrefix",  # S3 prefixes, without slashes at either end
    "OutputPrefix",
    "CapturePrefix",
)
PLACEHOLDER_RE = re.compile(r"\$\{(\w+)\}")
ACCOUNT_RE = re.compile(r"^\d{12}$")


class PolicyError(CloudError):
    """A policy file is missing, or a value for one of its placeholders is."""


def policy_names() -> list[str]:
    """The policy files, by name without .json: e.g. lambda-role, lambda-role.trust."""
    return sorted(p.name.removesuffix(".json") for p in POLICY_DIR.glob("*.json"))


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _s3_prefix_of(uri_or_prefix: str, bucket: str) -> str:
    """`s3://bucket/a/b/` or `a/b/` -> `a/b`."""
    return uri_or_prefix.removeprefix(f"s3://{bucket}").strip("/")


def policy_values(
    settings: CloudSettings, account_id: str, name_prefix: str = "scones"
) -> dict[str, str]:
    """Placeholder values for the given settings and AWS account."""
    if not ACCOUNT_RE.match(account_id):
        raise PolicyError(
            f"account id {account_id!r} is not 12 digits; see `aws sts get-caller-identity`"
        )
    return {
        "Partition": partition(settings.region),
        "Region": settings.region,
        "AccountId": account_id,
        "Bucket": settings.bucket,
        "EndpointName": settings.endpoint_name.lower(),
        "NamePrefix": name_prefix,
        "DatasetPrefix": _s3_prefix_of(settings.dataset_prefix, settings.bucket),
        "OutputPrefix": _s3_prefix_of(settings.output_prefix, settings.bucket),
        "CapturePrefix": _s3_prefix_of(settings.capture_uri, settings.bucket),
    }


def render_policy(name: str, values: dict[str, str]) -> dict[str, Any]:
    """The policy document ``name`` with every ${Placeholder} replaced; ready for IAM."""
    path = POLICY_DIR / f"{name}.json"
    if not path.is_file():
        raise PolicyError(f"no policy {name}; known: {', '.join(policy_names())}")
    text = path.read_text(encoding="utf-8")
    missing = sorted(set(PLACEHOLDER_RE.findall(text)) - set(values))
    if missing:
        raise PolicyError(f"{path.name} needs values for {', '.join(missing)}")
    # json.dumps(...)[1:-1]: a value is escaped as JSON string content, so it cannot break out.
    return json.loads(PLACEHOLDER_RE.sub(lambda m: json.dumps(values[m[1]])[1:-1], text))
