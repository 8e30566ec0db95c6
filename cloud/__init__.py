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
