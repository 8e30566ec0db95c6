"""`--target sagemaker-local`: cloud mode's SageMaker requests, run in Docker beside the emulator.

The requests are the very ones cloud mode sends (cloud.training, cloud.endpoint build them from the
same settings); cloud.sagemaker_local.LocalSageMaker answers them with containers. The data comes
from and the artifacts go to the emulator's S3; the Lambdas and state machines are the emulator's.
Only the PyTorch trainer runs here: the built-in algorithm's image is AWS's own.
"""

from __future__ import annotations

from dataclasses import replace

import boto3

import cloud
from cloud.clients import CloudClients
from cloud.images import pytorch_training_uri
from cloud.sagemaker_local import (
    MODEL_DOCKERFILE,
    TRAINING_DOCKERFILE,
    LocalSageMaker,
    build_image,
    docker_available,
)
from scones import PROJECT_ROOT, SconesError, UsageError, config
from scones.stack import free_port

TARGET = "sagemaker-local"
# Local tags standing in for the ECR images (nothing is pulled: both are built from docker/).
TRAINING_IMAGE = "scones/pytorch-training:local"
MODEL_IMAGE = "scones/sagemaker-model:local"
REMEMBERED = "sagemaker-local-model.json"  # the last artifact, like cloud-model.json


class SageMakerLocalError(SconesError):
    """The local SageMaker cannot run here (no Docker) or was asked for the cloud target."""


class TargetUsageError(SageMakerLocalError, UsageError):
    """--target names no target, or one SCONES_TARGET does not select (exit code 2)."""


def check_target(target: str | None) -> str:
    """The --target a command runs on: SCONES_TARGET, or sagemaker-local on the local target."""
    target = target or config.TARGET
    if target not in ("local", "cloud", TARGET):
        raise TargetUsageError(f"--target {target!r}: use local, cloud or {TARGET}")
    if target != TARGET and target != config.TARGET:  # where every AWS call goes: config only
        raise SageMakerLocalError(
            f"--target {target} needs SCONES_TARGET={target} (it is {config.TARGET}): the "
            "target decides where every AWS call goes, so only the environment switches it"
        )
    if target == TARGET and config.TARGET != "local":
        raise SageMakerLocalError(
            f"--target {TARGET} runs beside the emulator: SCONES_TARGET=local"
        )
    return target


def settings():
    """Cloud mode's settings, with what differs here: the PyTorch trainer and local images."""
    base = config.cloud_settings()
    role = (
        base.role_arn
        or f"arn:aws:iam::{config.ACCOUNT_ID}:role/{config.RESOURCE_PREFIX}-sagemaker-role"
    )
    return replace(
        base, trainer="pytorch", role_arn=role, model_image=base.model_image or MODEL_IMAGE
    )


def client():
    """The local SageMaker: the emulator's S3, our images for AWS's, state in SCONES_STATE_DIR."""
    reason = docker_available()
    if reason:
        raise SageMakerLocalError(f"--target {TARGET} runs containers: {reason}")
    config.apply_target_env()
    s = settings()
    # the URI cloud.training puts in the request (the SDK's when installed, else the table)
    training_uri = pytorch_training_uri(
        s.region, s.pytorch_version, s.pytorch_py_version, s.training_instance_type
    )
    return LocalSageMaker(
        s3=boto3.client("s3", region_name=config.REGION),
        state_dir=config.STATE_DIR / TARGET,
        images={training_uri: TRAINING_IMAGE, s.model_image: MODEL_IMAGE},
        container_env={  # what the role's credentials and S3 are for SageMaker's containers
            "AWS_ENDPOINT_URL": config.emulator_url(),
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": config.REGION,
        },
        region=config.REGION,
        account=config.ACCOUNT_ID,
        port_finder=free_port,  # below the ephemeral range: no connection takes it meanwhile
    )


def ensure_images(timeout: float = 3600) -> None:
    """Build the training and model images from docker/ when they are missing."""
    build_image(PROJECT_ROOT, TRAINING_DOCKERFILE, TRAINING_IMAGE, timeout=timeout)
    build_image(PROJECT_ROOT, MODEL_DOCKERFILE, MODEL_IMAGE, timeout=timeout)


def train(hyperparameters: dict | None = None) -> dict:
    """CreateTrainingJob as cloud mode sends it, run in the training container; remembered."""
    ensure_images()
    sm = client()
    return cloud.train_and_remember(
        settings(),
        config.STATE_DIR,
        hyperparameters,
        CloudClients(sagemaker=sm, s3=sm.s3),
        REMEMBERED,
    )


def deploy_endpoint(model_data_url: str | None = None) -> dict:
    """CreateModel/CreateEndpointConfig/CreateEndpoint served by our model container.

    :return: cloud.endpoint's DeployResult as a dict, plus ``url``: the runtime API's address.
    """
    ensure_images()
    sm = client()
    result = cloud.deploy_endpoint(
        settings(),
        config.STATE_DIR,
        model_data_url,
        CloudClients(sagemaker=sm, s3=sm.s3),
        REMEMBERED,
    )
    return {**result, "url": sm.endpoint_url(result["endpoint_name"])}


def endpoints() -> list[str]:
    """The local endpoints that have a container."""
    return [e["EndpointName"] for e in client()._load()["endpoints"].values()]


def shutdown() -> list[str]:
    """Stop the endpoint containers (`scones cleanup --target sagemaker-local`)."""
    return client().shutdown()
