"""`--target sagemaker-local` end to end on tiny data: cloud mode's requests, run in containers.

CreateTrainingJob (the request cloud mode builds) -> the training container started with `train`
(the real sagemaker-training toolkit runs local_model/train.py from the uploaded source) ->
model.tar.gz in the emulator's S3 -> CreateModel/CreateEndpoint -> our model container started
with `serve` -> an image classified by boto3, by the sagemaker SDK v2's Predictor and by the
workflow's Lambdas -> data capture written to S3. Needs a Docker daemon and the python base image.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import boto3
import pytest

from cloud.sagemaker_local import docker_available
from cloud.training import TrainingFailed
from local_model import evaluate as ev
from scones import config, deploy, sagemaker_local, stage, workflow

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BASE_IMAGE = "python:3.11-slim-trixie"
PREFIX = "datasets/sm-local-e2e/"
# A bucket of its own: staged datasets in the test stack's bucket would change other tests'
# inputs (`scones load` draws "other vehicles" from every dataset staged there).
BUCKET = "scones-sm-local-e2e"
# ResNet-20 from scratch at 32 px, one epoch: the whole contract in seconds of training
TINY = {"use_pretrained_model": 0, "image_shape": "3,32,32", "epochs": 1, "mini_batch_size": 32,
        "learning_rate": 0.05, "optimizer": "nag"}  # fmt: skip


def _skip_reason() -> str | None:
    reason = docker_available()
    if reason:
        return reason
    have = subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True)
    if have.returncode != 0:
        return f"no {BASE_IMAGE} image to build on (Docker Hub, or a local stand-in)"
    return None


@pytest.fixture(scope="module")
def local_sagemaker(emulator, tmp_path_factory):
    """Images built, tiny bicycle/motorcycle data staged, settings pointed at test names."""
    reason = _skip_reason()
    if reason:
        pytest.skip(f"the local SageMaker runs containers: {reason}")
    patch = pytest.MonkeyPatch()
    state = tmp_path_factory.mktemp("sm-local-state")
    for name, value in {
        "STATE_DIR": state,
        "CLOUD_DATASET_PREFIX": PREFIX,
        "CLOUD_OUTPUT_PREFIX": "models/sm-local-e2e/",
        "ENDPOINT_NAME": "scones-sm-local-e2e",
        "RESOURCE_PREFIX": "scones-smle",
        "BUCKET": BUCKET,
        "CAPTURE_DESTINATION": f"s3://{BUCKET}/sm-local-e2e-capture",
    }.items():
        patch.setattr(config, name, value)
    source = ev.write_synthetic_shapes(tmp_path_factory.mktemp("shapes"), num_classes=2)
    classes = json.loads((source / "classes.json").read_text())
    for key, name in zip(("0", "1"), ("bicycle", "motorcycle"), strict=True):
        classes[key]["name"] = name
    (source / "classes.json").write_text(json.dumps(classes))
    stage.stage(source, "bicycle,motorcycle", bucket=BUCKET, prefix=PREFIX, validation_fraction=0.2,
                out=tmp_path_factory.mktemp("staged"))  # fmt: skip
    sagemaker_local.ensure_images()
    yield sagemaker_local.client()
    try:
        sagemaker_local.shutdown()
        deploy.cleanup()
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def trained(local_sagemaker) -> dict:
    return sagemaker_local.train(TINY)


@pytest.fixture(scope="module")
def endpoint(trained) -> dict:
    return sagemaker_local.deploy_endpoint()


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def test_training_job_puts_model_tar_gz_in_s3_with_what_serve_loads(local_sagemaker, trained):
    assert trained["status"] == "Completed"
    assert trained["image_uri"] == sagemaker_local.MODEL_IMAGE
    bucket, _, key = trained["model_data_url"][5:].partition("/")
    assert key == f"models/sm-local-e2e/{trained['job_name']}/output/model.tar.gz"
    body = local_sagemaker.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert sorted(tar.getnames()) == ["model.json", "model.onnx"]
        meta = json.load(tar.extractfile("model.json"))
    # the toolkit gave the script the channel at /opt/ml/input/data/<channel> and our CLI args
    assert meta["data"]["source"] == "/opt/ml/input/data/dataset"
    assert meta["classes"] == ["bicycle", "motorcycle"]
    assert meta["hyperparameters"]["epochs"] == 1 and meta["hyperparameters"]["image_shape"] == (
        "3,32,32"
    )
    output = local_sagemaker.s3.get_object(
        Bucket=bucket, Key=key.replace("model.tar", "output.tar")
    )
    with tarfile.open(fileobj=io.BytesIO(output["Body"].read())) as tar:
        assert "metrics.json" in tar.getnames()  # SM_OUTPUT_DATA_DIR -> output.tar.gz


def test_container_saw_sagemakers_config_files(local_sagemaker, trained):
    job = local_sagemaker.describe_training_job(TrainingJobName=trained["job_name"])
    config_dir = local_sagemaker.state_dir / "training" / trained["job_name"] / "input" / "config"
    hyperparameters = json.loads((config_dir / "hyperparameters.json").read_text())
    assert hyperparameters == job["HyperParameters"]
    assert json.loads(hyperparameters["sagemaker_program"]) == "local_model/train.py"
    assert json.loads(hyperparameters["epochs"]) == 1
    channels = json.loads((config_dir / "inputdataconfig.json").read_text())
    assert channels["dataset"]["TrainingInputMode"] == "File"
    resources = json.loads((config_dir / "resourceconfig.json").read_text())
    assert resources["current_host"] in resources["hosts"]
    log = Path(job["LogFile"]).read_text()
    assert "Invoking script with the following command" in log  # the toolkit ran the script


def test_a_failing_job_reports_opt_ml_output_failure(local_sagemaker, trained):
    with pytest.raises(TrainingFailed, match="bad hyperparameter") as err:
        sagemaker_local.train({**TINY, "epochs": "twelve"})
    name = str(err.value).split()[2]
    failure = local_sagemaker.state_dir / "training" / name / "output" / "failure"
    assert failure.is_file() and "twelve" in failure.read_text()


def test_endpoint_serves_the_trained_artifact_through_the_runtime_api(endpoint):
    assert endpoint["action"] == "created" and endpoint["url"].startswith("http://127.0.0.1:")
    # scones' port chooser, below the kernel's ephemeral range: no outgoing connection can
    # take the port between the choice and the container's bind (bind(0) lies inside it)
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert low <= 20000 or 20000 <= int(endpoint["url"].rsplit(":", 1)[1]) < low
    runtime = boto3.client("sagemaker-runtime", region_name=config.REGION,
                           endpoint_url=endpoint["url"])  # fmt: skip
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint["endpoint_name"], ContentType="image/png", Body=_png()
    )
    probabilities = json.loads(answer["Body"].read())
    assert len(probabilities) == 2 and abs(sum(probabilities) - 1) < 1e-4


def test_deploying_the_same_artifact_again_changes_nothing(endpoint):
    assert sagemaker_local.deploy_endpoint()["action"] == "unchanged"


def test_sagemaker_sdk_v2_predictor_with_identity_serializer(endpoint):
    """The course's client: Predictor(...).predict(png bytes) with IdentitySerializer."""
    pytest.importorskip("sagemaker", reason="the sagemaker SDK v2 (`pip install 'scones[cloud]'`)")
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    import sagemaker
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer

    boto_session = boto3.Session(region_name=config.REGION)
    runtime = boto_session.client("sagemaker-runtime", endpoint_url=endpoint["url"])
    session = sagemaker.Session(boto_session=boto_session, sagemaker_runtime_client=runtime)
    predictor = Predictor(endpoint["endpoint_name"], sagemaker_session=session)
    predictor.serializer = IdentitySerializer("image/png")
    inferences = json.loads(predictor.predict(_png()))
    assert len(inferences) == 2 and abs(sum(inferences) - 1) < 1e-4


def test_workflow_classifies_through_the_endpoint_container_and_capture_lands(endpoint, tmp_path):
    deploy.deploy(threshold=0.0, runtime_url=endpoint["url"])  # every result confident
    image = tmp_path / "red.png"
    image.write_bytes(_png())
    outcome = workflow.run_image(str(image), timeout=180)
    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    assert len(outcome.inferences) == 2
    s3 = boto3.client("s3", region_name=config.REGION)
    prefix = f"sm-local-e2e-capture/{endpoint['endpoint_name']}/AllTraffic/"
    deadline = time.monotonic() + 60  # the container flushes capture files every few seconds
    while time.monotonic() < deadline:
        found = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        if found:
            break
        time.sleep(1)
    assert found, f"no capture under s3://{BUCKET}/{prefix}"
    record = json.loads(
        s3.get_object(Bucket=BUCKET, Key=found[0]["Key"])["Body"].read().splitlines()[0]
    )
    assert record["captureData"]["endpointInput"]["observedContentType"] == "image/png"


# ------------------------------ without containers ------------------------------


def test_target_names_are_checked_and_cloud_is_switched_only_by_the_environment() -> None:
    assert sagemaker_local.check_target(None) == config.TARGET == "local"
    assert sagemaker_local.check_target("sagemaker-local") == "sagemaker-local"
    with pytest.raises(sagemaker_local.SageMakerLocalError, match="use local, cloud or"):
        sagemaker_local.check_target("sagemaker")
    with pytest.raises(sagemaker_local.SageMakerLocalError, match="needs SCONES_TARGET=cloud"):
        sagemaker_local.check_target("cloud")


def test_a_request_aws_would_refuse_is_refused_before_anything_runs(tmp_path) -> None:
    from botocore.exceptions import ParamValidationError

    from cloud.sagemaker_local import LocalSageMaker

    local = LocalSageMaker(s3=None, state_dir=tmp_path)
    with pytest.raises(ParamValidationError, match="RoleArn"):
        local.create_training_job(TrainingJobName="scones-pt-1")
    with pytest.raises(ParamValidationError, match="InitialInstanceCount|ModelName"):
        local.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[{"x": 1}])
    assert not (tmp_path / "state.json").exists()  # nothing recorded, nothing started


@pytest.mark.parametrize(
    ("uri", "expected"),
    [  # SageMaker keeps each key's path below the prefix's last "/"
        ("s3://scones-sm-channels/sm-ch/data/train.lst", ["train.lst"]),
        ("s3://scones-sm-channels/sm-ch/data/", ["train.lst", "train/a.png"]),
        (
            "s3://scones-sm-channels/sm-ch/data",
            ["data-other/x", "data/train.lst", "data/train/a.png"],
        ),
    ],
)
def test_channel_files_land_where_sagemaker_puts_them(emulator, tmp_path, uri, expected) -> None:
    from cloud.sagemaker_local import LocalSageMaker

    s3 = boto3.client("s3", region_name=config.REGION)
    s3.create_bucket(Bucket="scones-sm-channels")
    for key in ("sm-ch/data/train.lst", "sm-ch/data/train/a.png", "sm-ch/data-other/x"):
        s3.put_object(Bucket="scones-sm-channels", Key=key, Body=b"x")
    channel = {"ChannelName": "c", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
               "S3Uri": uri}}}  # fmt: skip
    LocalSageMaker(s3=s3, state_dir=tmp_path)._download_channel(channel, tmp_path / "c")
    got = sorted(p.relative_to(tmp_path / "c").as_posix() for p in (tmp_path / "c").rglob("*"))
    assert [p for p in got if "." in p or p.endswith("/x")] == expected


def test_data_capture_config_becomes_the_servers_capture_settings() -> None:
    from cloud.sagemaker_local import capture_environment

    env = capture_environment({
        "EnableCapture": True, "InitialSamplingPercentage": 50,
        "DestinationS3Uri": "s3://b/capture", "CaptureOptions": [{"CaptureMode": "Input"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    })  # fmt: skip
    assert env["SCONES_CAPTURE_ENABLED"] == "1" and env["SCONES_CAPTURE_MODE"] == "Input"
    assert env["SCONES_CAPTURE_SAMPLING"] == "50"
    assert env["SCONES_CAPTURE_DESTINATION"] == "s3://b/capture"
    both = {"DestinationS3Uri": "s3://b", "InitialSamplingPercentage": 1,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]}  # fmt: skip
    assert capture_environment(both)["SCONES_CAPTURE_MODE"] == "InputAndOutput"
    assert capture_environment(None) == {"SCONES_CAPTURE_ENABLED": "0"}
