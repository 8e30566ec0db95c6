"""What only the cloud target needs: SageMaker training, endpoints with data capture, cleanup, IAM.

Selected by configuration (``SCONES_TARGET=cloud``), never by code edits. It never imports
``scones``: settings and the state folder come in as arguments. The pieces, each a plain
function the ``scones`` CLI calls:

- ``cloud.settings.CloudSettings`` (the caller fills it: scones.config.cloud_settings()) and
  ``cloud.clients.CloudClients.create()``
- ``cloud.training.train()``: the built-in image-classification algorithm or our PyTorch script
- ``cloud.endpoint.deploy()``: model, endpoint config with DataCaptureConfig, endpoint (idempotent)
- ``cloud.cleanup.plan_cleanup()`` / ``cloud.cleanup.cleanup()``: what to delete, then delete it
- ``cloud.iam.render_policy()``: the least-privilege policies in ``cloud/policies/``
- ``cloud.sagemaker_local.LocalSageMaker``: the same SageMaker requests run here, in Docker
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloud.clients import CloudClients
    from cloud.settings import CloudSettings


class CloudError(Exception):
    """A cloud-target operation cannot go on; the message says what to change."""


def train_and_remember(
    settings: CloudSettings,
    state_dir: Path,
    hyperparameters: dict | None = None,
    clients: CloudClients | None = None,
    remember: str = "cloud-model.json",
) -> dict:
    """`scones train` on the cloud target: a SageMaker training job; its artifact is remembered.

    The artifact's S3 URL and image go to ``state_dir``/``remember`` so `scones deploy` can serve
    it. ``clients``: default AWS in the settings' region (the local SageMaker passes its own).
    """
    from cloud.clients import CloudClients
    from cloud.training import train

    clients = clients or CloudClients.create(settings.region)
    result = asdict(train(clients, settings, wait=True, hyperparameters=hyperparameters))
    if result.get("model_data_url"):
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / remember).write_text(json.dumps(result, indent=2))
    return result


def deploy_endpoint(
    settings: CloudSettings,
    state_dir: Path,
    model_data_url: str | None = None,
    clients: CloudClients | None = None,
    remember: str = "cloud-model.json",
) -> dict:
    """`scones deploy` on the cloud target: the SageMaker endpoint with data capture.

    Serves ``model_data_url`` or the artifact of the last `scones train` on the cloud target
    (remembered in ``state_dir``).
    """
    from cloud.clients import CloudClients
    from cloud.endpoint import deploy

    image_uri = None
    remembered = state_dir / remember
    if not model_data_url:
        if not remembered.exists():
            raise CloudError(
                "no model artifact to serve: run `scones train` with SCONES_TARGET=cloud first "
                "(or --target sagemaker-local, whichever you deploy to), or pass --model-data "
                "s3://.../model.tar.gz"
            )
        last = json.loads(remembered.read_text())
        model_data_url, image_uri = last["model_data_url"], last.get("image_uri")
    clients = clients or CloudClients.create(settings.region)
    return asdict(deploy(clients, settings, model_data_url, image_uri=image_uri))
