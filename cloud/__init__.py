"""What only the cloud target needs: SageMaker training, endpoints with data capture, cleanup, IAM.

Selected by configuration (``SCONES_TARGET=cloud``), never by code edits. The pieces, each a plain
function the ``scones`` CLI calls:

- ``cloud.settings.CloudSettings.from_config()`` and ``cloud.clients.CloudClients.create()``
- ``cloud.training.train()``: the built-in image-classification algorithm or our PyTorch script
- ``cloud.endpoint.deploy()``: model, endpoint config with DataCaptureConfig, endpoint (idempotent)
- ``cloud.cleanup.plan_cleanup()`` / ``cloud.cleanup.cleanup()``: what to delete, then delete it
- ``cloud.iam.render_policy()``: the least-privilege policies in ``cloud/policies/``
- ``cloud.sagemaker_local.LocalSageMaker``: the same SageMaker requests run here, in Docker
"""

from scones import SconesError


class CloudError(SconesError):
    """A cloud-target operation cannot go on; the message says what to change."""


def train_and_remember(
    hyperparameters: dict | None = None,
    clients: object | None = None,
    settings: object | None = None,
    remember: str = "cloud-model.json",
) -> dict:
    """`scones train` on the cloud target: a SageMaker training job; its artifact is remembered.

    The artifact's S3 URL and image go to <state>/``remember`` so `scones deploy` can serve it.
    ``clients``/``settings``: default AWS and the SCONES_* settings (the local SageMaker passes
    its own).
    """
    import json
    from dataclasses import asdict

    from cloud.clients import CloudClients
    from cloud.settings import CloudSettings
    from cloud.training import train
    from scones import config

    settings = settings or CloudSettings.from_config()
    clients = clients or CloudClients.create(settings.region)
    result = asdict(train(clients, settings, wait=True, hyperparameters=hyperparameters))
    if result.get("model_data_url"):
        config.STATE_DIR.mkdir(parents=True, exist_ok=True)
        (config.STATE_DIR / remember).write_text(json.dumps(result, indent=2))
    return result


def deploy_endpoint(
    model_data_url: str | None = None,
    clients: object | None = None,
    settings: object | None = None,
    remember: str = "cloud-model.json",
) -> dict:
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
    remembered = config.STATE_DIR / remember
    if not model_data_url:
        if not remembered.exists():
            raise CloudError(
                "no model artifact to serve: run `scones train` with SCONES_TARGET=cloud first "
                "(or --target sagemaker-local, whichever you deploy to), or pass --model-data "
                "s3://.../model.tar.gz"
            )
        last = json.loads(remembered.read_text())
        model_data_url, image_uri = last["model_data_url"], last.get("image_uri")
    settings = settings or CloudSettings.from_config()
    clients = clients or CloudClients.create(settings.region)
    return asdict(deploy(clients, settings, model_data_url, image_uri=image_uri))
