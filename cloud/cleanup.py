"""Delete what the cloud target created in SageMaker (and, on request, the training artifacts).

Two steps, so a dry run shows exactly what a real run deletes: ``plan_cleanup`` lists the
resources that exist now, ``cleanup`` deletes a plan in dependency order (endpoint, endpoint
configs, models, running training jobs are stopped, artifacts). A second cleanup finds nothing
and does nothing. Only our own names are touched: the endpoint, and models and endpoint configs
named ``<endpoint>-<8 hex>`` as cloud.endpoint names them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from cloud import CloudError
from cloud.clients import CloudClients
from cloud.endpoint import not_found
from cloud.settings import CloudSettings

LOG = logging.getLogger(__name__)

KINDS = ("endpoint", "endpoint-config", "model", "training-job", "s3-objects")  # deletion order
DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys
WAIT_DELAY_SECONDS = 15  # DescribeEndpoint interval while waiting for a deletion
WAIT_MAX_ATTEMPTS = 40


class CleanupIncomplete(CloudError):
    """Some resources could not be deleted."""


@dataclass(frozen=True)
class CleanupNames:
    """Whose resources to clean up."""

    endpoint_name: str
    bucket: str
    artifact_prefix: str  # training output (and PyTorch source) under this S3 prefix
    job_prefix: str = "scones-"  # training jobs cloud.training started

    @classmethod
    def from_settings(cls, settings: CloudSettings) -> CleanupNames:
        return cls(settings.endpoint_name, settings.bucket, settings.output_prefix)


@dataclass(frozen=True)
class Resource:
    """One thing cleanup deletes (or, for a training job, stops)."""

    kind: str  # one of KINDS
    name: str
    detail: str = ""
    keys: tuple[str, ...] = ()  # s3-objects only

    def describe(self) -> str:
        return f"{self.kind:<16} {self.name}" + (f"  ({self.detail})" if self.detail else "")


def _paginate(client: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        items.extend(page.get(key, []))
    return items


def plan_cleanup(
    clients: CloudClients, names: CleanupNames, artifacts: bool = False
) -> list[Resource]:
    """What exists now and would be deleted, in deletion order. Read-only."""
    from botocore.exceptions import ClientError

    sm = clients.sagemaker
    ours = re.compile(rf"^{re.escape(names.endpoint_name)}-[0-9a-f]{{8}}$")
    plan: list[Resource] = []
    try:
        endpoint = sm.describe_endpoint(EndpointName=names.endpoint_name)
        plan.append(Resource("endpoint", names.endpoint_name, endpoint["EndpointStatus"]))
    except ClientError as err:
        if not not_found(err):
            raise
    configs = _paginate(
        sm, "list_endpoint_configs", "EndpointConfigs", NameContains=names.endpoint_name
    )
    plan += [
        Resource("endpoint-config", c["EndpointConfigName"])
        for c in sorted(configs, key=lambda c: c["EndpointConfigName"])
        if ours.match(c["EndpointConfigName"])
    ]
    models = _paginate(sm, "list_models", "Models", NameContains=names.endpoint_name)
    plan += [
        Resource("model", m["ModelName"])
        for m in sorted(models, key=lambda m: m["ModelName"])
        if ours.match(m["ModelName"])
    ]
    jobs = _paginate(
        sm,
        "list_training_jobs",
        "TrainingJobSummaries",
        NameContains=names.job_prefix,
        StatusEquals="InProgress",
    )
    plan += [
        Resource("training-job", j["TrainingJobName"], "InProgress: will be stopped")
        for j in sorted(jobs, key=lambda j: j["TrainingJobName"])
        if j["TrainingJobName"].startswith(names.job_prefix)
    ]
    if artifacts and names.artifact_prefix.strip("/"):  # never the whole bucket
        objects = _paginate(
            clients.s3, "list_objects_v2", "Contents", Bucket=names.bucket,
            Prefix=names.artifact_prefix,
        )  # fmt: skip
        if objects:
            keys = tuple(sorted(o["Key"] for o in objects))
            size = sum(o.get("Size", 0) for o in objects)
            plan.append(
                Resource(
                    "s3-objects",
                    f"s3://{names.bucket}/{names.artifact_prefix}",
                    f"{len(keys)} objects, {size / 1e6:.1f} MB",
                    keys,
                )
            )
    return plan


def _ignore_missing(call: Any, **kwargs: Any) -> bool:
    """Run a delete; False when the resource was already gone (a concurrent cleanup)."""
    from botocore.exceptions import ClientError

    try:
        call(**kwargs)
        return True
    except ClientError as err:
        if not_found(err):
            return False
        raise


def cleanup(
    clients: CloudClients,
    plan: list[Resource],
    dry_run: bool = False,
    wait: bool = True,
    delay: int = WAIT_DELAY_SECONDS,
    max_attempts: int = WAIT_MAX_ATTEMPTS,
) -> list[Resource]:
    """Delete the planned resources in dependency order; return what was (or would be) removed."""
    ordered = sorted(plan, key=lambda r: (KINDS.index(r.kind), r.name))
    if dry_run:
        return ordered
    sm, done = clients.sagemaker, []
    for resource in ordered:
        LOG.info("deleting %s %s", resource.kind, resource.name)
        if resource.kind == "endpoint":
            if _ignore_missing(sm.delete_endpoint, EndpointName=resource.name) and wait:
                # Its config and model may go at once, but wait so billing has surely stopped.
                sm.get_waiter("endpoint_deleted").wait(
                    EndpointName=resource.name,
                    WaiterConfig={"Delay": delay, "MaxAttempts": max_attempts},
                )
        elif resource.kind == "endpoint-config":
            _ignore_missing(sm.delete_endpoint_config, EndpointConfigName=resource.name)
        elif resource.kind == "model":
            _ignore_missing(sm.delete_model, ModelName=resource.name)
        elif resource.kind == "training-job":
            _stop_training_job(sm, resource.name)
        elif resource.kind == "s3-objects":
            bucket = resource.name.removeprefix("s3://").split("/", 1)[0]
            for i in range(0, len(resource.keys), DELETE_BATCH):
                batch = resource.keys[i : i + DELETE_BATCH]
                answer = clients.s3.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise CleanupIncomplete(
                        f"{len(answer['Errors'])} objects under {resource.name} were not deleted "
                        f"({first.get('Key')}: {first.get('Code')}); check s3:DeleteObject rights"
                    )
        done.append(resource)
    return done


def _stop_training_job(sm: Any, name: str) -> None:
    from botocore.exceptions import ClientError

    try:
        sm.stop_training_job(TrainingJobName=name)
    except ClientError as err:
        # It ended between plan and cleanup: nothing left to stop.
        if err.response["Error"]["Code"] != "ValidationException":
            raise
        LOG.info("training job %s had already stopped", name)
