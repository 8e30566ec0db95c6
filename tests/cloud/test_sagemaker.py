"""Cloud target: the exact SageMaker and S3 requests, their order, idempotency and cleanup.

No network and no AWS account: botocore's Stubber answers each call and fails the test on any
call, argument or order that differs from the queue (https://docs.aws.amazon.com/botocore/latest/
reference/stubber.html). Responses carry every field the real API marks required.
"""

from __future__ import annotations

import gzip
import io
import random
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from cloud import clients as cloud_clients
from cloud import images, training
from cloud.cleanup import CleanupNames, Resource, cleanup, plan_cleanup
from cloud.clients import CloudClients, EmulatorEndpointSet
from cloud.endpoint import EndpointFailed, data_capture_config, deploy
from cloud.settings import CloudSettings, CloudSettingsError
from cloud.training import DatasetNotStaged, TrainingFailed

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/scones-sagemaker-role"
NOW = datetime(2025, 1, 1, tzinfo=UTC)
ARTIFACT = "s3://scones-data/models/image_model/scones-ic-1/output/model.tar.gz"
CALLED: set[str] = set()  # "service:Operation" of every API call the tests saw
# S3 API operations whose IAM action has another name.
S3_ACTIONS = {
    "ListObjectsV2": "ListBucket",
    "HeadObject": "GetObject",
    "DeleteObjects": "DeleteObject",
}


@pytest.fixture
def settings() -> CloudSettings:
    return CloudSettings(region=REGION, bucket="scones-data", role_arn=ROLE)


@pytest.fixture(scope="module")
def boto_clients() -> CloudClients:
    """Real botocore clients (loading the SageMaker model takes ~0.6 s, so once per module)."""
    session = boto3.session.Session(
        region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    clients = CloudClients(sagemaker=session.client("sagemaker"), s3=session.client("s3"))
    for client in (clients.sagemaker, clients.s3):
        # Every call the cloud code makes in these tests, for the operator-policy check below.
        client.meta.events.register("before-parameter-build.*.*", _record_call)
    return clients


def _record_call(model, **_kwargs) -> None:
    CALLED.add(f"{model.service_model.service_name}:{model.name}")


@pytest.fixture
def stubs(boto_clients: CloudClients):
    """(CloudClients, sagemaker Stubber, s3 Stubber); every queued response must be used."""
    with Stubber(boto_clients.sagemaker) as sm_stub, Stubber(boto_clients.s3) as s3_stub:
        yield boto_clients, sm_stub, s3_stub
        sm_stub.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()


def not_found(stub: Stubber, operation: str, what: str, params: dict) -> None:
    """SageMaker's answer for a missing model / endpoint config / endpoint."""
    stub.add_client_error(
        operation,
        service_error_code="ValidationException",
        service_message=f'Could not find {what} "arn:aws:sagemaker:{REGION}:{ACCOUNT}:x".',
        http_status_code=400,
        expected_params=params,
    )


def endpoint_description(name: str, config: str, status: str, reason: str = "") -> dict:
    answer = {
        "EndpointName": name,
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{name}",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
    }
    if reason:
        answer["FailureReason"] = reason
    return answer


def lst_body(count: int) -> dict:
    lines = "".join(f"{i}\t{i % 2}\ttrain/img_{i}.png\n" for i in range(count)) + "\n"
    data = lines.encode()
    return {"Body": StreamingBody(io.BytesIO(data), len(data))}


def training_description(name: str, status: str, **extra) -> dict:
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": extra.pop("artifact", "")},
        "TrainingJobStatus": status,
        "SecondaryStatus": "Completed" if status == "Completed" else "Training",
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {
            "InstanceType": "ml.p3.2xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": NOW,
        **extra,
    }


# ------------------------------ Training ------------------------------


def test_builtin_training_job_is_the_course_job(stubs, settings) -> None:
    """Four channels of application/x-image, the course's hyperparameters, samples from the .lst."""
    clients, sm, s3 = stubs
    samples = random.Random(7).randint(50, 900)
    prefix = "datasets/bicycle-motorcycle/"
    s3.add_response(
        "get_object", lst_body(samples), {"Bucket": "scones-data", "Key": f"{prefix}train.lst"}
    )
    s3.add_response(
        "get_object", lst_body(9), {"Bucket": "scones-data", "Key": f"{prefix}validation.lst"}
    )
    image = "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1"

    def channel(name: str, suffix: str) -> dict:
        return {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://scones-data/{prefix}{suffix}",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "ContentType": "application/x-image",
            "CompressionType": "None",
            "RecordWrapperType": "None",
        }

    expected = {
        "TrainingJobName": "scones-ic-20250101-000000",
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "InputDataConfig": [
            channel("train", "train/"),
            channel("validation", "validation/"),
            channel("train_lst", "train.lst"),
            channel("validation_lst", "validation.lst"),
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://scones-data/models/image_model/"},
        "ResourceConfig": {
            "InstanceType": "ml.p3.2xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "HyperParameters": {
            "image_shape": "3,32,32",
            "num_classes": "2",
            "num_training_samples": str(samples),
            "epochs": "30",
            "mini_batch_size": "32",
            "learning_rate": "0.1",
        },
        "Tags": [{"Key": "project", "Value": "scones"}],
    }
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/scones-ic-20250101-000000"
    sm.add_response("create_training_job", {"TrainingJobArn": arn}, expected)
    sm.add_response(
        "describe_training_job",
        training_description("scones-ic-20250101-000000", "Completed", artifact=ARTIFACT),
        {"TrainingJobName": "scones-ic-20250101-000000"},
    )

    name = training.job_name("builtin", NOW)
    started = training.start_training(clients, settings, name=name, use_sdk=False)
    done = training.wait_for_training(clients, started, timeout_seconds=60, poll_seconds=0.01)

    assert (done.status, done.model_data_url, done.image_uri) == ("Completed", ARTIFACT, image)


def test_builtin_training_refuses_without_a_validation_split(stubs, settings) -> None:
    """No validation.lst: a named error and no job; validation is never taken from test."""
    clients, _sm, s3 = stubs
    prefix = settings.dataset_prefix
    s3.add_response(
        "get_object", lst_body(100), {"Bucket": "scones-data", "Key": f"{prefix}train.lst"}
    )
    s3.add_client_error(
        "get_object",
        service_error_code="NoSuchKey",
        http_status_code=404,
        expected_params={"Bucket": "scones-data", "Key": f"{prefix}validation.lst"},
    )
    with pytest.raises(DatasetNotStaged, match="--validation-fraction"):
        training.start_training(clients, settings, name="scones-ic-x", use_sdk=False)


def test_failed_training_job_reports_sagemakers_reason(stubs, settings) -> None:
    clients, sm, _s3 = stubs
    reason = "ClientError: Unable to read train.lst"
    sm.add_response(
        "describe_training_job",
        training_description("scones-ic-x", "Failed", FailureReason=reason),
        {"TrainingJobName": "scones-ic-x"},
    )
    started = training.TrainingResult("scones-ic-x", "InProgress", None, "image")
    with pytest.raises(TrainingFailed, match=reason):
        training.wait_for_training(clients, started, timeout_seconds=60, poll_seconds=0.01)


def _fake_project(root: Path) -> Path:
    (root / "local_model").mkdir(parents=True)
    for name in ("__init__.py", "train.py", "preprocess.py", "lst.py", "serve.py"):
        (root / "local_model" / name).write_text(f"print({name!r})\n")
    (root / "local_model" / "default").mkdir()
    (root / "local_model" / "default" / "model.onnx").write_bytes(b"\0" * 64)
    (root / "scones").mkdir()
    (root / "scones" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[project.optional-dependencies]\n'
        'train = ["torch==2.13.0", "onnx>=1.16", "efficientnet-lite-pytorch==0.1.0"]\n'
    )
    return root


def test_pytorch_job_runs_our_script_from_an_uploaded_source_dir(
    stubs, settings, tmp_path, monkeypatch
) -> None:
    clients, sm, s3 = stubs
    root = _fake_project(tmp_path / "repo")
    monkeypatch.setattr(training, "PROJECT_ROOT", root)
    model_image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/scones-model:1"
    settings = CloudSettings(
        region=REGION, bucket="scones-data", role_arn=ROLE, trainer="pytorch",
        training_instance_type="ml.g5.xlarge", model_image=model_image,
    )  # fmt: skip
    prefix, name = settings.dataset_prefix, "scones-pt-20250101-000000"
    source_key = f"models/image_model/{name}/source/sourcedir.tar.gz"
    source = training.package_source(root)
    s3.add_response(
        "get_object", lst_body(10), {"Bucket": "scones-data", "Key": f"{prefix}train.lst"}
    )
    s3.add_response("put_object", {}, {"Bucket": "scones-data", "Key": source_key, "Body": source})
    image = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.10.0-gpu-py313"
    sm.add_response(
        "create_training_job",
        {"TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}"},
        {
            "TrainingJobName": name,
            "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
            "RoleArn": ROLE,
            "InputDataConfig": [
                {
                    "ChannelName": "dataset",
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": f"s3://scones-data/{prefix}",
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                    "CompressionType": "None",
                    "RecordWrapperType": "None",
                }
            ],
            "OutputDataConfig": {"S3OutputPath": "s3://scones-data/models/image_model/"},
            "ResourceConfig": {
                "InstanceType": "ml.g5.xlarge",
                "InstanceCount": 1,
                "VolumeSizeInGB": 30,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "HyperParameters": {
                "sagemaker_program": '"local_model/train.py"',
                "sagemaker_submit_directory": f'"s3://scones-data/{source_key}"',
                "sagemaker_region": '"us-east-1"',
                "sagemaker_container_log_level": "20",
            },
            "Environment": {"PYTHONPATH": "/opt/ml/code"},
            "Tags": [{"Key": "project", "Value": "scones"}],
        },
    )
    started = training.start_training(clients, settings, name=name, use_sdk=False)
    assert started.image_uri == model_image


def test_source_dir_is_reproducible_and_holds_script_and_requirements(tmp_path) -> None:
    root = _fake_project(tmp_path / "repo")
    first, second = training.package_source(root), training.package_source(root)
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(first))) as tar:
        names = sorted(tar.getnames())
        requirements = tar.extractfile("requirements.txt").read().decode()
    # the entry point and its imports only: no server, no scones core, no committed model
    assert names == [
        "local_model/__init__.py",
        "local_model/lst.py",
        "local_model/preprocess.py",
        "local_model/train.py",
        "requirements.txt",
    ]
    assert requirements.splitlines() == ["onnx>=1.16", "efficientnet-lite-pytorch==0.1.0"]


# ------------------------------ Deploy ------------------------------


def deploy_requests(settings: CloudSettings, image: str, artifact: str = ARTIFACT):
    from cloud.endpoint import endpoint_config_request, model_request

    model = model_request(settings, image, artifact)
    return model, endpoint_config_request(settings, model["ModelName"])


IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1"


def test_first_deploy_creates_model_config_with_capture_then_endpoint(stubs, settings) -> None:
    clients, sm, _s3 = stubs
    model, endpoint_config = deploy_requests(settings, IMAGE)
    model_name, config_name = model["ModelName"], endpoint_config["EndpointConfigName"]
    assert model == {
        "ModelName": model_name,
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": ARTIFACT},
        "ExecutionRoleArn": ROLE,
        "Tags": [{"Key": "project", "Value": "scones"}],
    }
    assert endpoint_config == {
        "EndpointConfigName": config_name,
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": model_name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
                "InitialVariantWeight": 1.0,
            }
        ],
        "DataCaptureConfig": {
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": "s3://scones-data/data_capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {
                "JsonContentTypes": ["application/json"],
                "CsvContentTypes": ["text/csv"],
            },
        },
        "Tags": [{"Key": "project", "Value": "scones"}],
    }
    not_found(sm, "describe_model", "model", {"ModelName": model_name})
    sm.add_response("create_model", {"ModelArn": f"arn:aws:sagemaker:::model/{model_name}"}, model)
    not_found(
        sm,
        "describe_endpoint_config",
        "endpoint configuration",
        {"EndpointConfigName": config_name},
    )
    sm.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"arn:aws:sagemaker:::endpoint-config/{config_name}"},
        endpoint_config,
    )
    not_found(sm, "describe_endpoint", "endpoint", {"EndpointName": "scones-classifier"})
    sm.add_response(
        "create_endpoint",
        {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/scones-classifier"},
        {
            "EndpointName": "scones-classifier",
            "EndpointConfigName": config_name,
            "Tags": [{"Key": "project", "Value": "scones"}],
        },
    )
    sm.add_response(  # the endpoint_in_service waiter's first poll
        "describe_endpoint",
        endpoint_description("scones-classifier", config_name, "InService"),
        {"EndpointName": "scones-classifier"},
    )
    result = deploy(clients, settings, ARTIFACT, image_uri=IMAGE, delay=1, max_attempts=2)
    assert (result.action, result.model_name, result.endpoint_config_name) == (
        "created", model_name, config_name,
    )  # fmt: skip
    assert result.capture_uri == "s3://scones-data/data_capture"


def test_second_deploy_of_the_same_model_changes_nothing(stubs, settings) -> None:
    clients, sm, _s3 = stubs
    model, endpoint_config = deploy_requests(settings, IMAGE)
    config_name = endpoint_config["EndpointConfigName"]
    sm.add_response(
        "describe_model",
        {
            "ModelName": model["ModelName"],
            "ModelArn": f"arn:aws:sagemaker:::model/{model['ModelName']}",
            "CreationTime": NOW,
        },
        {"ModelName": model["ModelName"]},
    )
    sm.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": config_name,
            "EndpointConfigArn": f"arn:aws:sagemaker:::endpoint-config/{config_name}",
            "ProductionVariants": endpoint_config["ProductionVariants"],
            "CreationTime": NOW,
        },
        {"EndpointConfigName": config_name},
    )
    sm.add_response(
        "describe_endpoint",
        endpoint_description("scones-classifier", config_name, "InService"),
        {"EndpointName": "scones-classifier"},
    )
    result = deploy(clients, settings, ARTIFACT, image_uri=IMAGE, delay=1, max_attempts=2)
    assert result.action == "unchanged"


def test_deploy_of_a_new_artifact_updates_the_endpoint_in_place(stubs, settings) -> None:
    clients, sm, _s3 = stubs
    new_artifact = ARTIFACT.replace("scones-ic-1", "scones-ic-2")
    old_config = deploy_requests(settings, IMAGE)[1]["EndpointConfigName"]
    model, endpoint_config = deploy_requests(settings, IMAGE, new_artifact)
    config_name = endpoint_config["EndpointConfigName"]
    assert config_name != old_config  # a new artifact is a new model, so a new config
    not_found(sm, "describe_model", "model", {"ModelName": model["ModelName"]})
    sm.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:::model/m"}, model)
    not_found(
        sm,
        "describe_endpoint_config",
        "endpoint configuration",
        {"EndpointConfigName": config_name},
    )
    sm.add_response(
        "create_endpoint_config", {"EndpointConfigArn": "arn:aws:sagemaker:::c"}, endpoint_config
    )
    sm.add_response(
        "describe_endpoint",
        endpoint_description("scones-classifier", old_config, "InService"),
        {"EndpointName": "scones-classifier"},
    )
    sm.add_response(
        "update_endpoint",
        {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/scones-classifier"},
        {"EndpointName": "scones-classifier", "EndpointConfigName": config_name},
    )
    sm.add_response(
        "describe_endpoint",
        endpoint_description("scones-classifier", config_name, "InService"),
        {"EndpointName": "scones-classifier"},
    )
    result = deploy(clients, settings, new_artifact, image_uri=IMAGE, delay=1, max_attempts=2)
    assert result.action == "updated"


def test_deploy_reports_an_endpoint_that_fails_to_come_up(stubs, settings) -> None:
    clients, sm, _s3 = stubs
    model, endpoint_config = deploy_requests(settings, IMAGE)
    config_name = endpoint_config["EndpointConfigName"]
    reason = "The primary container for production variant AllTraffic did not pass the ping check"
    not_found(sm, "describe_model", "model", {"ModelName": model["ModelName"]})
    sm.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:::model/m"}, model)
    not_found(
        sm,
        "describe_endpoint_config",
        "endpoint configuration",
        {"EndpointConfigName": config_name},
    )
    sm.add_response(
        "create_endpoint_config", {"EndpointConfigArn": "arn:aws:sagemaker:::c"}, endpoint_config
    )
    not_found(sm, "describe_endpoint", "endpoint", {"EndpointName": "scones-classifier"})
    sm.add_response("create_endpoint", {"EndpointArn": "arn:aws:sagemaker:::endpoint/e"}, None)
    sm.add_response(
        "describe_endpoint",
        endpoint_description("scones-classifier", config_name, "Failed", reason),
        {"EndpointName": "scones-classifier"},
    )
    with pytest.raises(EndpointFailed, match="ping check"):
        deploy(clients, settings, ARTIFACT, image_uri=IMAGE, delay=1, max_attempts=2)


def test_capture_follows_the_same_settings_and_layout_as_the_local_server(settings) -> None:
    """Same destination default, variant and content types as local_model.capture."""
    from local_model.capture import CaptureConfig
    from scones import config

    local = CaptureConfig.from_env()
    cloud = config.cloud_settings()
    capture = data_capture_config(cloud)
    assert capture["DestinationS3Uri"] == local.destination.rstrip("/")
    assert cloud.variant == local.variant
    assert capture["InitialSamplingPercentage"] == local.sampling_percentage
    header = capture["CaptureContentTypeHeader"]
    assert tuple(header["JsonContentTypes"]) == local.json_content_types
    assert tuple(header["CsvContentTypes"]) == local.csv_content_types
    assert cloud.endpoint_name == config.ENDPOINT_NAME


@pytest.mark.parametrize(
    ("mode", "captured"),
    [("Input", ["Input"]), ("Output", ["Output"]), ("InputAndOutput", ["Input", "Output"])],
)
def test_capture_mode_maps_to_capture_options(mode: str, captured: list[str]) -> None:
    settings = CloudSettings(region=REGION, bucket="b", role_arn=ROLE, capture_mode=mode)
    options = data_capture_config(settings)["CaptureOptions"]
    assert [o["CaptureMode"] for o in options] == captured


def test_fractional_sampling_is_refused_because_sagemaker_takes_whole_percents() -> None:
    settings = CloudSettings(region=REGION, bucket="b", role_arn=ROLE, capture_sampling=12.5)
    with pytest.raises(CloudSettingsError, match="whole percents"):
        data_capture_config(settings)


# ------------------------------ Cleanup ------------------------------


NAMES = CleanupNames("scones-classifier", "scones-data", "models/image_model/")


def _queue_plan(sm: Stubber, s3: Stubber | None, exists: bool) -> None:
    """The read-only calls plan_cleanup makes, answering as if our resources (do not) exist."""
    if exists:
        sm.add_response(
            "describe_endpoint",
            endpoint_description("scones-classifier", "scones-classifier-0a1b2c3d", "InService"),
            {"EndpointName": "scones-classifier"},
        )
    else:
        not_found(sm, "describe_endpoint", "endpoint", {"EndpointName": "scones-classifier"})
    configs = ["scones-classifier-0a1b2c3d", "scones-classifier-v2-0a1b2c3d", "scones-classifier"]
    sm.add_response(
        "list_endpoint_configs",
        {
            "EndpointConfigs": [
                {
                    "EndpointConfigName": c,
                    "EndpointConfigArn": f"arn:aws:sagemaker:::c/{c}",
                    "CreationTime": NOW,
                }
                for c in (configs if exists else [])
            ]
        },  # fmt: skip
        {"NameContains": "scones-classifier"},
    )
    models = ["scones-classifier-ffff0000", "scones-classifier-0a1b2c3d", "other-0a1b2c3d"]
    sm.add_response(
        "list_models",
        {
            "Models": [
                {"ModelName": m, "ModelArn": f"arn:aws:sagemaker:::model/{m}", "CreationTime": NOW}
                for m in (models if exists else [])
            ]
        },
        {"NameContains": "scones-classifier"},
    )
    sm.add_response(
        "list_training_jobs",
        {
            "TrainingJobSummaries": [
                {
                    "TrainingJobName": "scones-ic-20250101-000000",
                    "TrainingJobArn": "arn:aws:sagemaker:::training-job/scones-ic-20250101-000000",
                    "CreationTime": NOW,
                    "TrainingJobStatus": "InProgress",
                }
            ]
            if exists
            else []
        },  # fmt: skip
        {"NameContains": "scones-", "StatusEquals": "InProgress"},
    )
    if s3 is not None:
        objects = [
            {"Key": f"models/image_model/scones-ic-1/output/{n}", "Size": 1_000_000}
            for n in ("model.tar.gz", "output.tar.gz")
        ]
        s3.add_response(
            "list_objects_v2",
            {"Contents": objects if exists else [], "KeyCount": len(objects) if exists else 0},
            {"Bucket": "scones-data", "Prefix": "models/image_model/"},
        )


def test_plan_lists_only_our_resources_in_deletion_order(stubs) -> None:
    clients, sm, s3 = stubs
    _queue_plan(sm, s3, exists=True)
    plan = plan_cleanup(clients, NAMES, artifacts=True)
    assert [(r.kind, r.name) for r in plan] == [
        ("endpoint", "scones-classifier"),
        ("endpoint-config", "scones-classifier-0a1b2c3d"),
        ("model", "scones-classifier-0a1b2c3d"),
        ("model", "scones-classifier-ffff0000"),
        ("training-job", "scones-ic-20250101-000000"),
        ("s3-objects", "s3://scones-data/models/image_model/"),
    ]
    assert plan[-1].keys == (
        "models/image_model/scones-ic-1/output/model.tar.gz",
        "models/image_model/scones-ic-1/output/output.tar.gz",
    )


def test_dry_run_lists_the_plan_and_deletes_nothing(stubs) -> None:
    clients, sm, _s3 = stubs
    _queue_plan(sm, None, exists=True)
    plan = plan_cleanup(clients, NAMES)
    listed = cleanup(clients, plan, dry_run=True)  # any delete call would fail the Stubber
    assert listed == plan
    assert all(r.describe().startswith(r.kind) for r in listed)


def test_cleanup_deletes_in_dependency_order(stubs) -> None:
    clients, sm, s3 = stubs
    _queue_plan(sm, s3, exists=True)
    plan = plan_cleanup(clients, NAMES, artifacts=True)
    sm.add_response("delete_endpoint", {}, {"EndpointName": "scones-classifier"})
    not_found(sm, "describe_endpoint", "endpoint", {"EndpointName": "scones-classifier"})  # waiter
    sm.add_response(
        "delete_endpoint_config", {}, {"EndpointConfigName": "scones-classifier-0a1b2c3d"}
    )
    sm.add_response("delete_model", {}, {"ModelName": "scones-classifier-0a1b2c3d"})
    # a concurrent cleanup removed this one first: not an error
    not_found(sm, "delete_model", "model", {"ModelName": "scones-classifier-ffff0000"})
    sm.add_response("stop_training_job", {}, {"TrainingJobName": "scones-ic-20250101-000000"})
    s3.add_response(
        "delete_objects",
        {"Deleted": [{"Key": k} for k in plan[-1].keys]},
        {
            "Bucket": "scones-data",
            "Delete": {"Objects": [{"Key": k} for k in plan[-1].keys], "Quiet": True},
        },
    )
    done = cleanup(clients, list(reversed(plan)), delay=1, max_attempts=2)
    assert done == plan  # reordered: endpoint first, artifacts last


def test_cleanup_after_cleanup_is_a_no_op(stubs) -> None:
    clients, sm, s3 = stubs
    _queue_plan(sm, s3, exists=False)
    plan = plan_cleanup(clients, NAMES, artifacts=True)
    assert plan == []
    assert cleanup(clients, plan) == []  # and no call: the Stubber has nothing queued


def test_artifacts_are_only_listed_on_request_and_never_the_whole_bucket(stubs) -> None:
    clients, sm, _s3 = stubs
    _queue_plan(sm, None, exists=False)
    everything = CleanupNames("scones-classifier", "scones-data", "/")
    assert plan_cleanup(clients, everything, artifacts=True) == []


def test_resource_describe_names_kind_and_detail() -> None:
    line = Resource("endpoint", "scones-classifier", "InService").describe()
    assert "endpoint" in line and "scones-classifier" in line and "InService" in line


# ------------------------------ Settings, clients, images ------------------------------


def test_settings_refuse_a_name_sagemaker_would_refuse() -> None:
    with pytest.raises(CloudSettingsError, match="SCONES_ENDPOINT_NAME"):
        CloudSettings(region=REGION, bucket="b", role_arn=ROLE, endpoint_name="bad_name")


def test_a_missing_role_is_a_named_error_before_any_call(stubs) -> None:
    clients, _sm, _s3 = stubs
    settings = CloudSettings(region=REGION, bucket="scones-data", role_arn="")
    with pytest.raises(CloudSettingsError, match="SCONES_SAGEMAKER_ROLE_ARN"):
        deploy(clients, settings, ARTIFACT, image_uri=IMAGE)


def test_cloud_clients_refuse_an_emulator_endpoint(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    with pytest.raises(EmulatorEndpointSet, match="unset it"):
        CloudClients.create(REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER", raising=False)
    created = CloudClients.create(REGION)  # no call is made: creating a client is offline
    assert created.sagemaker.meta.region_name == REGION
    assert cloud_clients.RETRY_CONFIG["mode"] == "adaptive"


@pytest.mark.parametrize("region", sorted(images.IMAGE_CLASSIFICATION_ACCOUNTS))
def test_builtin_algorithm_image_for_every_region(region: str) -> None:
    uri = images.image_classification_uri(region, use_sdk=False)
    account = images.IMAGE_CLASSIFICATION_ACCOUNTS[region]
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    assert uri == f"{account}.dkr.ecr.{region}.{domain}/image-classification:1"


def test_unknown_region_is_a_named_error() -> None:
    with pytest.raises(images.ImageUnavailable, match="mars-west-1"):
        images.image_classification_uri("mars-west-1", use_sdk=False)


@pytest.mark.parametrize(
    ("instance", "processor"),
    [
        ("ml.p3.2xlarge", "gpu"),
        ("ml.g5.xlarge", "gpu"),
        ("ml.m5.xlarge", "cpu"),
        ("ml.c5.4xlarge", "cpu"),
    ],
)
def test_pytorch_image_tag_follows_the_instance_type(instance: str, processor: str) -> None:
    uri = images.pytorch_training_uri("eu-west-1", "2.10.0", "py313", instance, use_sdk=False)
    assert (
        uri
        == f"763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.10.0-{processor}-py313"
    )


def test_table_agrees_with_the_sagemaker_sdk_when_installed() -> None:
    if images._sdk_retrieve(framework="image-classification", region=REGION) is None:
        pytest.skip("the sagemaker SDK is not installed (optional extra `cloud`)")
    for region in images.IMAGE_CLASSIFICATION_ACCOUNTS:
        assert images.image_classification_uri(region) == images.image_classification_uri(
            region, use_sdk=False
        )


def test_operator_policy_allows_every_call_the_cloud_code_made() -> None:
    """Runs last in this module: each API call seen above is allowed by cloud/policies/operator."""
    from cloud.iam import policy_values, render_policy

    if not CALLED:
        pytest.skip("run with the rest of this module: it checks the calls the other tests made")
    settings = CloudSettings(region=REGION, bucket="scones-data", role_arn=ROLE)
    policy = render_policy("operator", policy_values(settings, ACCOUNT))
    allowed = [
        action.lower()
        for statement in policy["Statement"]
        if statement["Effect"] == "Allow"
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
    ]
    actions = {
        f"{service}:{S3_ACTIONS.get(op, op) if service == 's3' else op}".lower()
        for service, op in (call.split(":") for call in CALLED)
    }
    assert {"sagemaker:createtrainingjob", "sagemaker:createendpoint"} <= actions
    assert sorted(a for a in actions if a not in allowed) == []


def test_an_sdk_without_the_pytorch_version_falls_back_to_the_table() -> None:
    """sagemaker 2.x's tables end at PyTorch 2.8: cloud mode must still find 2.10's image."""
    pytest.importorskip("sagemaker", reason="the sagemaker SDK is not installed")
    uri = images.pytorch_training_uri("us-east-1", "2.10.0", "py313", "ml.p3.2xlarge")
    assert uri == images.pytorch_training_uri(
        "us-east-1", "2.10.0", "py313", "ml.p3.2xlarge", use_sdk=False
    )
    assert uri == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.10.0-gpu-py313"
