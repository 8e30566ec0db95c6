"""What only the cloud target needs: SageMaker training, endpoints with data capture, cleanup, IAM.

Selected by configuration (``SCONES_TARGET=cloud``), never by code edits. The pieces, each a plain
function the ``scones`` CLI calls:

- ``cloud.settings.CloudSettings.from_config()`` and ``cloud.clients.CloudClients.create()``
- ``cloud.training.train()``: the built-in image-classification algorithm or our PyTorch script
- ``cloud.endpoint.deploy()``: model, endpoint config with DataCaptureConfig, endpoint (idempotent)
- ``cloud.cleanup.plan_cleanup()`` / ``cloud.cleanup.cleanup()``: what to delete, then delete it
- ``cloud.iam.render_policy()``: the least-privilege policies in ``cloud/policies/``
"""

from scones import SconesError


class CloudError(SconesError):
    """A cloud-target operation cannot go on; the message says what to change."""


def train_and_remember() -> dict:
    """`scones train` on the cloud target: a SageMaker training job; its artifact is remembered.

    The artifact's S3 URL and image go to <state>/cloud-model.json so `scones deploy` can serve it.
    """
    import json
    from dataclasses import asdict

    from cloud.clients import CloudClients
    from cloud.settings import CloudSettings
    from cloud.training import train
    from scones import config

    settings = CloudSettings.from_config()
    result = asdict(train(CloudClients.create(settings.region), settings, wait=True))
    if result.get("model_data_url"):
        config.STATE_DIR.mkdir(parents=True, exist_ok=True)
        (config.STATE_DIR / "cloud-model.json").write_text(json.dumps(result, indent=2))
    return result


def deploy_endpoint(model_data_url: str | None = None) -> dict:
    """`scones deploy` on the cloud target: the SageMaker endpoint with data capture.

    Serves ``model_data_url`` or the artifact of the last `scones train` on the cloud target.
    """
    import json
    from dataclasses import asdict

    from cloud.clients import CloudClients
    from cloud.endpoint import deploy
    from cloud.settings import CloudSettings
    from scones import config

    image_uri = None
    remembered = config.STATE_DIR / "cloud-model.json"
    if not model_data_url:
        if not remembered.exists():
            raise CloudError(
                "no model artifact to serve: run `scones train` with SCONES_TARGET=cloud first, "
                "or pass --model-data s3://.../model.tar.gz"
            )
        last = json.loads(remembered.read_text())
        model_data_url, image_uri = last["model_data_url"], last.get("image_uri")
    settings = CloudSettings.from_config()
    clients = CloudClients.create(settings.region)
    return asdict(deploy(clients, settings, model_data_url, image_uri=image_uri))
