"""boto3 clients for the cloud target: real AWS only, never the emulator."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cloud import CloudError

# Retries for throttled control-plane calls; SageMaker's Describe* limits are low.
RETRY_CONFIG = {"max_attempts": 8, "mode": "adaptive"}


class EmulatorEndpointSet(CloudError):
    """boto3 would send cloud calls to a custom endpoint (the emulator)."""


@dataclass(frozen=True)
class CloudClients:
    """The AWS clients cloud functions use; tests build it from stubbed clients."""

    sagemaker: Any
    s3: Any

    @classmethod
    def create(cls, region: str) -> CloudClients:
        """Clients for ``region`` with the caller's credentials (profile, env or instance role)."""
        import boto3
        from botocore.config import Config

        url = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER")
        if url:
            raise EmulatorEndpointSet(
                f"AWS_ENDPOINT_URL is {url}: boto3 would send SageMaker calls there, not to AWS; "
                "unset it (and AWS_ENDPOINT_URL_SAGEMAKER) for SCONES_TARGET=cloud"
            )
        session = boto3.session.Session(region_name=region)
        config = Config(retries=RETRY_CONFIG)
        return cls(
            sagemaker=session.client("sagemaker", config=config),
            s3=session.client("s3", config=config),
        )
