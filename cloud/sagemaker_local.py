"""SageMaker's training and hosting contracts run here in Docker: a stand-in SageMaker client.

``LocalSageMaker`` answers the SageMaker calls cloud mode makes (CreateTrainingJob,
DescribeTrainingJob, CreateModel, CreateEndpointConfig, CreateEndpoint, ...) with their request and
response shapes; each request is first checked against botocore's model of the real API, so a
request AWS would refuse is refused here. Then it does what SageMaker does with it, in containers:

Training (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html):
- every channel's S3 prefix is downloaded (File mode) to /opt/ml/input/data/<channel>;
- /opt/ml/input/config/hyperparameters.json, inputdataconfig.json and resourceconfig.json are
  written;
- the image runs as ``docker run IMAGE train`` with the request's Environment;
- /opt/ml/model is packed into ``<S3OutputPath>/<job>/output/model.tar.gz`` (and
  /opt/ml/output/data into output.tar.gz); a failed job's FailureReason is /opt/ml/output/failure,
  which the container wrote.

Hosting (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html):
- ModelDataUrl is unpacked into /opt/ml/model and the image runs as ``docker run IMAGE serve``,
  listening where SAGEMAKER_BIND_TO_PORT says; the endpoint is InService once GET /ping is 200;
- the endpoint config's DataCaptureConfig becomes the container's SCONES_CAPTURE_* settings (on
  AWS SageMaker captures outside the container; our server writes the same S3 layout).

Containers share the host's network, so they reach the emulator's S3 on 127.0.0.1 as SageMaker's
reach S3; the endpoint listens on 127.0.0.1 only. State (jobs, models, endpoints and their
containers) lives in ``state_dir``/state.json, so another process can invoke or delete them.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloud import CloudError

LOG = logging.getLogger(__name__)

CONTAINER_PREFIX = "scones-sm-"  # every container we start is named so (and only ours are)
PING_TIMEOUT_S = 180.0  # an endpoint container has this long to answer GET /ping
PING_STEP_S = 0.5
DOCKER_TIMEOUT_S = 120.0  # docker run -d / rm / inspect


class LocalSageMakerError(CloudError):
    """Docker is missing, or a request names something this machine cannot run."""


def _client_error(operation: str, message: str, code: str = "ValidationException") -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise LocalSageMakerError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def free_port() -> int:
    """The kernel's choice of a free port: it lies in the ephemeral range, where another
    process's outgoing connection may take it before the container binds it. scones passes
    its own chooser (``port_finder``), which draws below that range."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker_available(docker: str = "docker") -> str | None:
    """None when a Docker daemon answers; else why not (tests skip with this reason)."""
    if not shutil.which(docker):
        return f"no `{docker}` command on PATH"
    try:
        done = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 30 s"
    if done.returncode != 0:
        return f"no Docker daemon reachable: {done.stderr.strip()[:200]}"
    return None


@dataclass
class LocalSageMaker:
    """The SageMaker client cloud.training and cloud.endpoint call, answered by local containers.

    :param s3: a boto3 S3 client (the emulator's): channels come from it, artifacts go to it.
    :param images: request image URI -> local image tag (the ECR images cannot be pulled here).
    :param container_env: environment every container gets: where S3 is and its credentials.
    :param port_finder: picks the port an endpoint's container serves on (the host's network).
    """

    s3: Any
    state_dir: Path
    images: dict[str, str] = field(default_factory=dict)
    container_env: dict[str, str] = field(default_factory=dict)
    docker: str = "docker"
    region: str = "us-east-1"
    account: str = "000000000000"
    port_finder: Callable[[], int] = free_port

    def __post_init__(self) -> None:
        import botocore.session

        self.state_dir = Path(self.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._model = botocore.session.get_session().get_service_model("sagemaker")

    # ------------------------------ state ------------------------------
    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    def _load(self) -> dict[str, dict]:
        if self._state_file.is_file():
            return json.loads(self._state_file.read_text())
        return {"training_jobs": {}, "models": {}, "endpoint_configs": {}, "endpoints": {}}

    def _save(self, state: dict) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, default=str))
        tmp.replace(self._state_file)

    def _check(self, operation: str, params: dict) -> None:
        """Refuse what botocore (and so AWS) would refuse: names, types, required members."""
        from botocore.validate import validate_parameters

        validate_parameters(params, self._model.operation_model(operation).input_shape)

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{kind}/{name.lower()}"

    def _image(self, uri: str) -> str:
        """The local tag standing in for ``uri``; it must exist (nothing is pulled)."""
        local = self.images.get(uri, uri)
        done = subprocess.run(
            [self.docker, "image", "inspect", local], capture_output=True, timeout=DOCKER_TIMEOUT_S
        )
        if done.returncode != 0:
            raise LocalSageMakerError(
                f"image {uri} has no local stand-in ({local} is not built); build it with "
                "`scones train --target sagemaker-local` or cloud/sagemaker_local.build_images"
            )
        return local

    # ------------------------------ training ------------------------------
    def create_training_job(self, **request: Any) -> dict:
        """Run the job to its end (SageMaker runs it in the background; Describe sees the end)."""
        self._check("CreateTrainingJob", request)
        name = request["TrainingJobName"]
        state = self._load()
        if name in state["training_jobs"]:
            raise _client_error("CreateTrainingJob", f"Job name {name} already exists")
        algorithm = request["AlgorithmSpecification"]
        job = {
            "TrainingJobName": name,
            "TrainingJobArn": self._arn("training-job", name),
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "AlgorithmSpecification": algorithm,
            "ResourceConfig": request["ResourceConfig"],
            "StoppingCondition": request["StoppingCondition"],
            "HyperParameters": request.get("HyperParameters", {}),
            "CreationTime": _now(),
            "ModelArtifacts": {"S3ModelArtifacts": ""},
        }
        state["training_jobs"][name] = job
        self._save(state)
        try:
            job.update(self._run_training(request))
        except LocalSageMakerError as err:
            job.update(TrainingJobStatus="Failed", SecondaryStatus="Failed", FailureReason=str(err))
        job["TrainingEndTime"] = _now()
        state = self._load()
        state["training_jobs"][name] = job
        self._save(state)
        return {"TrainingJobArn": job["TrainingJobArn"]}

    def describe_training_job(self, TrainingJobName: str) -> dict:  # noqa: N803 - AWS's name
        job = self._load()["training_jobs"].get(TrainingJobName)
        if job is None:
            raise _client_error(
                "DescribeTrainingJob", f"Requested resource not found: {TrainingJobName}"
            )
        return job

    def stop_training_job(self, TrainingJobName: str) -> dict:  # noqa: N803
        self.describe_training_job(TrainingJobName)  # jobs here end before create returns
        return {}

    def _run_training(self, request: dict) -> dict:
        name = request["TrainingJobName"]
        algorithm = request["AlgorithmSpecification"]
        if algorithm.get("TrainingInputMode", "File") != "File":
            raise LocalSageMakerError("only File input mode runs locally")
        image = self._image(algorithm["TrainingImage"])
        root = self.state_dir / "training" / name
        shutil.rmtree(root, ignore_errors=True)
        opt_ml = {p: root / p for p in ("input/config", "input/data", "model", "output/data")}
        for path in opt_ml.values():
            path.mkdir(parents=True)
        config_dir = opt_ml["input/config"]
        channels: dict[str, dict] = {}
        for channel in request["InputDataConfig"]:
            self._download_channel(channel, opt_ml["input/data"] / channel["ChannelName"])
            channels[channel["ChannelName"]] = {
                "TrainingInputMode": channel.get("InputMode", algorithm.get("TrainingInputMode")),
                "S3DistributionType": channel["DataSource"]["S3DataSource"].get(
                    "S3DataDistributionType", "FullyReplicated"
                ),
                "RecordWrapperType": channel.get("RecordWrapperType", "None"),
                **({"ContentType": channel["ContentType"]} if "ContentType" in channel else {}),
            }
        resources = request["ResourceConfig"]
        (config_dir / "hyperparameters.json").write_text(
            json.dumps(request.get("HyperParameters", {}))
        )
        (config_dir / "inputdataconfig.json").write_text(json.dumps(channels))
        host = "algo-1"
        (config_dir / "resourceconfig.json").write_text(
            json.dumps(
                {
                    "current_host": host,
                    "current_instance_type": resources["InstanceType"],
                    "current_group_name": "homogeneousCluster",
                    "hosts": [host],
                    "instance_groups": [
                        {
                            "instance_group_name": "homogeneousCluster",
                            "instance_type": resources["InstanceType"],
                            "hosts": [host],
                        }
                    ],
                    "network_interface_name": "eth0",
                }
            )
        )
        env = {
            **self.container_env,
            "AWS_REGION": self.region,
            "TRAINING_JOB_NAME": name,
            "TRAINING_JOB_ARN": self._arn("training-job", name),
            **request.get("Environment", {}),
        }
        container = f"{CONTAINER_PREFIX}train-{name}"
        # algo-1 must resolve: the toolkit waits until every host in resourceconfig.json does
        cmd = [self.docker, "run", "--name", container, "--network", "host",
               "--add-host", f"{host}:127.0.0.1"]  # fmt: skip
        for path in ("input", "model", "output"):
            cmd += ["-v", f"{root / path}:/opt/ml/{path}"]
        for key, value in env.items():
            cmd += ["-e", f"{key}={value}"]
        cmd += [image, "train"]
        limit = request["StoppingCondition"]["MaxRuntimeInSeconds"]
        LOG.info("training job %s: docker run %s train", name, image)
        started = time.monotonic()
        subprocess.run([self.docker, "rm", "-f", container], capture_output=True)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            subprocess.run([self.docker, "rm", "-f", container], capture_output=True)
            return {
                "TrainingJobStatus": "Stopped",
                "SecondaryStatus": "MaxRuntimeExceeded",
                "FailureReason": f"MaxRuntimeInSeconds ({limit} s) exceeded",
            }
        seconds = round(time.monotonic() - started, 1)
        (root / "container.log").write_text(done.stdout + done.stderr)
        subprocess.run([self.docker, "rm", "-f", container], capture_output=True)
        failure = root / "output" / "failure"
        if done.returncode != 0:
            # SageMaker's FailureReason: the first 1,024 characters of the file
            reason = failure.read_text()[:1024].strip() if failure.is_file() else ""
            return {
                "TrainingJobStatus": "Failed",
                "SecondaryStatus": "Failed",
                "FailureReason": reason or f"exit {done.returncode}: {done.stderr[-2000:]}",
                "TrainingTimeInSeconds": seconds,
                "LogFile": str(root / "container.log"),
            }
        output = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        model_uri = f"{output}/{name}/output/model.tar.gz"
        self._upload_tar(opt_ml["model"], model_uri)
        self._upload_tar(opt_ml["output/data"], f"{output}/{name}/output/output.tar.gz")
        return {
            "TrainingJobStatus": "Completed",
            "SecondaryStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": model_uri},
            "TrainingTimeInSeconds": seconds,
            "LogFile": str(root / "container.log"),
        }

    def _download_channel(self, channel: dict, dest: Path) -> None:
        """File mode: the objects under the S3 prefix, relative to the prefix's last folder."""
        source = channel["DataSource"].get("S3DataSource")
        if source is None or source["S3DataType"] != "S3Prefix":
            raise LocalSageMakerError(
                f"channel {channel['ChannelName']}: only S3DataType S3Prefix runs locally"
            )
        if channel.get("CompressionType", "None") != "None":
            raise LocalSageMakerError(f"channel {channel['ChannelName']}: compressed input")
        bucket, prefix = _split_s3(source["S3Uri"])
        base = prefix[: prefix.rfind("/") + 1]
        count = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(base) :]
                if not relative or relative.endswith("/"):
                    continue
                target = dest / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, item["Key"], str(target))
                count += 1
        if not count:
            raise LocalSageMakerError(
                f"channel {channel['ChannelName']}: no objects under {source['S3Uri']}"
            )
        dest.mkdir(parents=True, exist_ok=True)

    def _upload_tar(self, folder: Path, uri: str) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for path in sorted(folder.rglob("*")):
                tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
        bucket, key = _split_s3(uri)
        self.s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())

    # ------------------------------ hosting ------------------------------
    def create_model(self, **request: Any) -> dict:
        self._check("CreateModel", request)
        state = self._load()
        name = request["ModelName"]
        if name in state["models"]:
            raise _client_error("CreateModel", f"Cannot create already existing model {name}")
        state["models"][name] = {**request, "ModelArn": self._arn("model", name)}
        self._save(state)
        return {"ModelArn": self._arn("model", name)}

    def describe_model(self, ModelName: str) -> dict:  # noqa: N803
        model = self._load()["models"].get(ModelName)
        if model is None:
            raise _client_error("DescribeModel", f'Could not find model "{ModelName}".')
        return model

    def delete_model(self, ModelName: str) -> dict:  # noqa: N803
        state = self._load()
        if state["models"].pop(ModelName, None) is None:
            raise _client_error("DeleteModel", f'Could not find model "{ModelName}".')
        self._save(state)
        return {}

    def create_endpoint_config(self, **request: Any) -> dict:
        self._check("CreateEndpointConfig", request)
        state = self._load()
        name = request["EndpointConfigName"]
        if name in state["endpoint_configs"]:
            raise _client_error(
                "CreateEndpointConfig", f"Cannot create already existing endpoint config {name}"
            )
        arn = self._arn("endpoint-config", name)
        state["endpoint_configs"][name] = {**request, "EndpointConfigArn": arn}
        self._save(state)
        return {"EndpointConfigArn": arn}

    def describe_endpoint_config(self, EndpointConfigName: str) -> dict:  # noqa: N803
        found = self._load()["endpoint_configs"].get(EndpointConfigName)
        if found is None:
            raise _client_error(
                "DescribeEndpointConfig",
                f'Could not find endpoint configuration "{EndpointConfigName}".',
            )
        return found

    def delete_endpoint_config(self, EndpointConfigName: str) -> dict:  # noqa: N803
        state = self._load()
        if state["endpoint_configs"].pop(EndpointConfigName, None) is None:
            raise _client_error(
                "DeleteEndpointConfig",
                f'Could not find endpoint configuration "{EndpointConfigName}".',
            )
        self._save(state)
        return {}

    def create_endpoint(self, **request: Any) -> dict:
        self._check("CreateEndpoint", request)
        name = request["EndpointName"]
        if name in self._load()["endpoints"]:
            raise _client_error("CreateEndpoint", f"Cannot create already existing endpoint {name}")
        self._serve(name, request["EndpointConfigName"])
        return {"EndpointArn": self._arn("endpoint", name)}

    def update_endpoint(self, EndpointName: str, EndpointConfigName: str) -> dict:  # noqa: N803
        self._check(
            "UpdateEndpoint",
            {"EndpointName": EndpointName, "EndpointConfigName": EndpointConfigName},
        )
        self.describe_endpoint(EndpointName)
        self._serve(EndpointName, EndpointConfigName)
        return {"EndpointArn": self._arn("endpoint", EndpointName)}

    def describe_endpoint(self, EndpointName: str) -> dict:  # noqa: N803
        endpoint = self._load()["endpoints"].get(EndpointName)
        if endpoint is None:
            raise _client_error("DescribeEndpoint", f'Could not find endpoint "{EndpointName}".')
        return {k: v for k, v in endpoint.items() if not k.startswith("Local")}

    def delete_endpoint(self, EndpointName: str) -> dict:  # noqa: N803
        state = self._load()
        endpoint = state["endpoints"].pop(EndpointName, None)
        if endpoint is None:
            raise _client_error("DeleteEndpoint", f'Could not find endpoint "{EndpointName}".')
        self._remove_container(endpoint["LocalContainer"])
        self._save(state)
        return {}

    def endpoint_url(self, name: str) -> str:
        """Where the endpoint's runtime API answers: AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME's value."""
        self.describe_endpoint(name)
        return self._load()["endpoints"][name]["LocalUrl"]

    def get_waiter(self, name: str) -> _EndpointWaiter:
        if name != "endpoint_in_service":
            raise LocalSageMakerError(f"no local waiter {name}")
        return _EndpointWaiter(self)

    def get_paginator(self, operation: str) -> _ListPaginator:
        return _ListPaginator(self, operation)

    def _serve(self, name: str, config_name: str) -> None:
        """Start the endpoint's container for ``config_name`` (replacing any), wait for /ping."""
        config = self.describe_endpoint_config(config_name)
        variant = config["ProductionVariants"][0]
        model = self.describe_model(variant["ModelName"])
        container = model["PrimaryContainer"]
        image = self._image(container["Image"])
        model_dir = self.state_dir / "endpoints" / name / config_name / "model"
        shutil.rmtree(model_dir, ignore_errors=True)
        model_dir.mkdir(parents=True)
        if container.get("ModelDataUrl"):
            bucket, key = _split_s3(container["ModelDataUrl"])
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
                tar.extractall(model_dir, filter="data")
        port = self.port_finder()
        env = {
            **self.container_env,
            "AWS_REGION": self.region,
            "SAGEMAKER_BIND_TO_PORT": str(port),
            "SCONES_MODEL_HOST": "127.0.0.1",  # the host's network: loopback only
            "SCONES_ENDPOINT_NAME": name,
            "SCONES_MODEL_VARIANT": variant["VariantName"],
            **capture_environment(config.get("DataCaptureConfig")),
            **container.get("Environment", {}),
        }
        state = self._load()
        old = state["endpoints"].get(name)
        if old:
            self._remove_container(old["LocalContainer"])
        container_name = f"{CONTAINER_PREFIX}endpoint-{name}"
        self._remove_container(container_name)
        cmd = [self.docker, "run", "-d", "--name", container_name, "--network", "host",
               "-v", f"{model_dir}:/opt/ml/model:ro"]  # fmt: skip
        for key, value in env.items():
            cmd += ["-e", f"{key}={value}"]
        cmd += [image, "serve"]
        started = subprocess.run(cmd, capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S)
        endpoint = {
            "EndpointName": name,
            "EndpointArn": self._arn("endpoint", name),
            "EndpointConfigName": config_name,
            "EndpointStatus": "Creating",
            "CreationTime": (old or {}).get("CreationTime", _now()),
            "LastModifiedTime": _now(),
            "LocalContainer": container_name,
            "LocalUrl": f"http://127.0.0.1:{port}",
        }
        if started.returncode != 0:
            endpoint.update(EndpointStatus="Failed", FailureReason=started.stderr.strip()[-2000:])
        else:
            reason = self._wait_ping(container_name, endpoint["LocalUrl"])
            if reason:
                endpoint.update(EndpointStatus="Failed", FailureReason=reason)
            else:
                endpoint["EndpointStatus"] = "InService"
        state = self._load()
        state["endpoints"][name] = endpoint
        self._save(state)

    def _wait_ping(self, container: str, url: str) -> str:
        """'' once GET /ping is 200; else why the container never got there (its log's tail)."""
        deadline = time.monotonic() + PING_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        return ""
            except OSError:
                pass
            running = subprocess.run(
                [self.docker, "inspect", "-f", "{{.State.Running}}", container],
                capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S,
            )  # fmt: skip
            if running.stdout.strip() != "true":
                break
            time.sleep(PING_STEP_S)
        logs = subprocess.run([self.docker, "logs", "--tail", "20", container],
                              capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S)  # fmt: skip
        return f"the container did not answer GET /ping: {(logs.stdout + logs.stderr)[-2000:]}"

    def _remove_container(self, container: str) -> None:
        subprocess.run([self.docker, "rm", "-f", container], capture_output=True,
                       timeout=DOCKER_TIMEOUT_S)  # fmt: skip

    def shutdown(self) -> list[str]:
        """Stop every endpoint container of this state dir; returns the endpoint names."""
        state = self._load()
        names = list(state["endpoints"])
        for name in names:
            self.delete_endpoint(name)
        return names


def capture_environment(capture: dict | None) -> dict[str, str]:
    """DataCaptureConfig as our server's SCONES_CAPTURE_* settings (the same meaning each)."""
    if not capture or not capture.get("EnableCapture", True):
        return {"SCONES_CAPTURE_ENABLED": "0"}
    modes = {o["CaptureMode"] for o in capture.get("CaptureOptions", [])}
    header = capture.get("CaptureContentTypeHeader", {})
    return {
        "SCONES_CAPTURE_ENABLED": "1",
        "SCONES_CAPTURE_DESTINATION": capture["DestinationS3Uri"],
        "SCONES_CAPTURE_SAMPLING": str(capture["InitialSamplingPercentage"]),
        "SCONES_CAPTURE_MODE": "InputAndOutput" if len(modes) != 1 else modes.pop(),
        "SCONES_CAPTURE_JSON_TYPES": ",".join(header.get("JsonContentTypes", [])),
        "SCONES_CAPTURE_CSV_TYPES": ",".join(header.get("CsvContentTypes", [])),
    }


@dataclass
class _EndpointWaiter:
    """boto3's endpoint_in_service waiter: InService ends it, Failed raises WaiterError."""

    client: LocalSageMaker

    def wait(self, EndpointName: str, WaiterConfig: dict | None = None) -> None:  # noqa: N803
        from botocore.exceptions import WaiterError

        config = WaiterConfig or {}
        for _ in range(int(config.get("MaxAttempts", 60))):
            endpoint = self.client.describe_endpoint(EndpointName=EndpointName)
            if endpoint["EndpointStatus"] == "InService":
                return
            if endpoint["EndpointStatus"] == "Failed":
                raise WaiterError("EndpointInService", "Waiter encountered a terminal failure "
                                  "state", endpoint)  # fmt: skip
            time.sleep(float(config.get("Delay", 1)))
        raise WaiterError("EndpointInService", "Max attempts exceeded", endpoint)


@dataclass
class _ListPaginator:
    """ListEndpointConfigs / ListModels / ListTrainingJobs over the local state, one page."""

    client: LocalSageMaker
    operation: str

    def paginate(self, NameContains: str = "", **_: Any):  # noqa: N803
        state = self.client._load()
        key, kind, items = {
            "list_models": ("Models", "ModelName", state["models"]),
            "list_endpoint_configs": ("EndpointConfigs", "EndpointConfigName",
                                      state["endpoint_configs"]),
            "list_training_jobs": ("TrainingJobSummaries", "TrainingJobName",
                                   state["training_jobs"]),
        }[self.operation]  # fmt: skip
        yield {key: [{kind: n, **v} for n, v in items.items() if NameContains in n]}


# ------------------------------ images ------------------------------
TRAINING_DOCKERFILE = "docker/Dockerfile.training"
MODEL_DOCKERFILE = "docker/Dockerfile.model"


def build_image(
    root: Path,
    dockerfile: str,
    tag: str,
    base: str = "python",
    docker: str = "docker",
    timeout: float = 3600,
) -> None:
    """``docker build`` from the repository root (no-op when ``tag`` exists).

    The training image prefers wheels in docker/wheels/: the pip find-links folders' wheels are
    copied there first (a CPU torch where the machine has one).
    """
    if subprocess.run([docker, "image", "inspect", tag], capture_output=True).returncode == 0:
        return
    wheels = root / "docker" / "wheels"
    wheels.mkdir(exist_ok=True)
    for folder in filter(None, os.environ.get("PIP_FIND_LINKS", "").split()):
        for wheel in Path(folder).glob("*.whl"):
            if not (wheels / wheel.name).exists():
                shutil.copy2(wheel, wheels / wheel.name)
    toolkit = re.search(r"^ARG TOOLKIT=(\S+)", (root / dockerfile).read_text(), re.MULTILINE)
    if (
        toolkit
        and sys.version_info[:2] == (3, 11)
        and not list(wheels.glob("sagemaker_training-*"))
    ):
        # Its C extension needs Python's headers, which a stand-in base image may lack; this
        # Python is the image's version, so a wheel built here installs there.
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
             toolkit[1]],
            check=True, timeout=timeout,
        )  # fmt: skip
    cmd = [docker, "build", "-f", dockerfile, "-t", tag, "--build-arg", f"BASE={base}", "."]
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the classic builder: no frontend to pull
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise LocalSageMakerError(f"docker build {tag} failed: {done.stderr[-2000:]}")
