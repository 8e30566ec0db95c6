"""SageMaker hosting: model, endpoint config with data capture, endpoint; deploying is idempotent.

Names are derived from what they hold, so deploying the same artifact twice changes nothing and
deploying a new one updates the endpoint in place (no downtime):

- model ``<endpoint>-<hash of image, artifact, role>``
- endpoint config ``<endpoint>-<hash of model, instances, DataCaptureConfig>``
- endpoint ``<endpoint>``: CreateEndpoint when missing, UpdateEndpoint when its config differs.

Data capture lands where the local server writes it, in the same layout:
``<DestinationS3Uri>/<endpoint>/<variant>/YYYY/MM/DD/HH/*.jsonl`` (variant: AllTraffic)
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture.html).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from cloud import CloudError
from cloud.clients import CloudClients
from cloud.images import image_classification_uri
from cloud.settings import CloudSettings, CloudSettingsError

LOG = logging.getLogger(__name__)

CAPTURE_MODES = {"Input": ["Input"], "Output": ["Output"], "InputAndOutput": ["Input", "Output"]}
WAIT_DELAY_SECONDS = 30  # DescribeEndpoint interval while waiting for InService
WAIT_MAX_ATTEMPTS = 60  # 30 minutes: endpoint creation usually takes 5-10
BUSY_STATUSES = ("Creating", "Updating", "SystemUpdating", "RollingBack")  # they end by themselves


class EndpointFailed(CloudError):
    """The endpoint did not reach InService, or is in a state deploy cannot change."""


@dataclass(frozen=True)
class DeployResult:
    """What a deploy did: action is created, updated or unchanged."""

    endpoint_name: str
    model_name: str
    endpoint_config_name: str
    action: str
    capture_uri: str


def not_found(err: Exception) -> bool:
    """SageMaker's answer for a missing model, endpoint config or endpoint."""
    response = getattr(err, "response", {}) or {}
    error = response.get("Error", {})
    return error.get("Code") == "ValidationException" and "Could not find" in error.get(
        "Message", ""
    )


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:8]


def data_capture_config(settings: CloudSettings) -> dict[str, Any]:
    """The endpoint config's DataCaptureConfig, from the same SCONES_CAPTURE_* settings."""
    if not float(settings.capture_sampling).is_integer():
        raise CloudSettingsError(
            f"SCONES_CAPTURE_SAMPLING={settings.capture_sampling}: SageMaker takes whole percents"
        )
    header: dict[str, list[str]] = {}
    if settings.capture_json_types:
        header["JsonContentTypes"] = list(settings.capture_json_types)
    if settings.capture_csv_types:
        header["CsvContentTypes"] = list(settings.capture_csv_types)
    config: dict[str, Any] = {
        "EnableCapture": True,
        "InitialSamplingPercentage": int(settings.capture_sampling),
        "DestinationS3Uri": settings.capture_uri,
        "CaptureOptions": [{"CaptureMode": m} for m in CAPTURE_MODES[settings.capture_mode]],
    }
    if header:
        config["CaptureContentTypeHeader"] = header
    return config


def model_request(settings: CloudSettings, image_uri: str, model_data_url: str) -> dict[str, Any]:
    """CreateModel arguments; the name is a hash of what the model is."""
    role = settings.require_role()
    name = f"{settings.endpoint_name}-{_digest(image_uri, model_data_url, role)}"
    return {
        "ModelName": name,
        "PrimaryContainer": {"Image": image_uri, "ModelDataUrl": model_data_url},
        "ExecutionRoleArn": role,
        "Tags": settings.tag_list(),
    }


def endpoint_config_request(settings: CloudSettings, model_name: str) -> dict[str, Any]:
    """CreateEndpointConfig arguments: one variant, data capture on."""
    variant = {
        "VariantName": settings.variant,  # the local server captures under the same name
        "ModelName": model_name,
        "InitialInstanceCount": settings.endpoint_instance_count,
        "InstanceType": settings.endpoint_instance_type,
        "InitialVariantWeight": 1.0,
    }
    capture = data_capture_config(settings)
    return {
        "EndpointConfigName": f"{settings.endpoint_name}-{_digest(variant, capture)}",
        "ProductionVariants": [variant],
        "DataCaptureConfig": capture,
        "Tags": settings.tag_list(),
    }


def _exists(call: Any, **kwargs: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)
    except ClientError as err:
        if not_found(err):
            return None
        raise


def wait_in_service(
    clients: CloudClients,
    endpoint_name: str,
    delay: int = WAIT_DELAY_SECONDS,
    max_attempts: int = WAIT_MAX_ATTEMPTS,
) -> None:
    """Block until the endpoint is InService; a named error with SageMaker's reason if not."""
    from botocore.exceptions import WaiterError

    waiter = clients.sagemaker.get_waiter("endpoint_in_service")
    try:
        waiter.wait(
            EndpointName=endpoint_name,
            WaiterConfig={"Delay": delay, "MaxAttempts": max_attempts},
        )
    except WaiterError as err:
        last = err.last_response or {}
        reason = last.get("FailureReason") or last.get("EndpointStatus") or str(err)
        raise EndpointFailed(
            f"endpoint {endpoint_name} did not come InService: {reason}; see CloudWatch logs "
            f"/aws/sagemaker/Endpoints/{endpoint_name}"
        ) from err


def deploy(
    clients: CloudClients,
    settings: CloudSettings,
    model_data_url: str,
    image_uri: str | None = None,
    wait: bool = True,
    delay: int = WAIT_DELAY_SECONDS,
    max_attempts: int = WAIT_MAX_ATTEMPTS,
) -> DeployResult:
    """Serve ``model_data_url`` at ``settings.endpoint_name`` with data capture.

    :param image_uri: the serving image: pass ``TrainingResult.image_uri`` after training;
        default SCONES_CLOUD_MODEL_IMAGE (our ONNX container), else the built-in algorithm's.
    """
    sm = clients.sagemaker
    image_uri = image_uri or settings.model_image or image_classification_uri(settings.region)
    model = model_request(settings, image_uri, model_data_url)
    if _exists(sm.describe_model, ModelName=model["ModelName"]) is None:
        LOG.info("creating model %s", model["ModelName"])
        sm.create_model(**model)
    endpoint_config = endpoint_config_request(settings, model["ModelName"])
    config_name = endpoint_config["EndpointConfigName"]
    if _exists(sm.describe_endpoint_config, EndpointConfigName=config_name) is None:
        LOG.info("creating endpoint config %s", config_name)
        sm.create_endpoint_config(**endpoint_config)

    name = settings.endpoint_name
    current = _exists(sm.describe_endpoint, EndpointName=name)
    if current is not None and current["EndpointStatus"] in BUSY_STATUSES:
        LOG.info("endpoint %s is %s; waiting before deploying", name, current["EndpointStatus"])
        wait_in_service(clients, name, delay, max_attempts)
        current = sm.describe_endpoint(EndpointName=name)
    if current is None:
        LOG.info("creating endpoint %s", name)
        sm.create_endpoint(
            EndpointName=name, EndpointConfigName=config_name, Tags=settings.tag_list()
        )
        action = "created"
    elif current["EndpointStatus"] != "InService":
        raise EndpointFailed(
            f"endpoint {name} is {current['EndpointStatus']} "
            f"({current.get('FailureReason', 'no reason given')}); "
            "delete it with `scones cleanup` and deploy again"
        )
    elif current["EndpointConfigName"] == config_name:
        action = "unchanged"
    else:
        LOG.info("updating endpoint %s to %s", name, config_name)
        sm.update_endpoint(EndpointName=name, EndpointConfigName=config_name)
        action = "updated"
    if wait and action != "unchanged":
        wait_in_service(clients, name, delay, max_attempts)
    return DeployResult(name, model["ModelName"], config_name, action, settings.capture_uri)
