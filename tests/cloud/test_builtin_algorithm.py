"""The built-in image-classification job, field by field against what AWS documents for it.

`scones stage --validation-fraction` writes the dataset into the emulator's S3; the job request
cloud mode builds from it is captured by botocore's Stubber (AWS cannot be reached here) and
every channel, manifest and hyperparameter the algorithm reads is checked against its doc:
- IO: https://docs.aws.amazon.com/sagemaker/latest/dg/image-classification.html#IC-inputoutput
- HP: https://docs.aws.amazon.com/sagemaker/latest/dg/IC-Hyperparameter.html
- API: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html
"""

from __future__ import annotations

import json
import re

import boto3
import pytest
from botocore.stub import Stubber

from cloud import training
from cloud.clients import CloudClients
from cloud.settings import CloudSettings
from local_model import evaluate as ev
from scones import config, stage

pytestmark = pytest.mark.integration
PREFIX = "datasets/ic-doc-check/"
# A bucket of its own: a dataset staged in the test stack's bucket would change other tests'
# inputs (`scones load` draws "other vehicles" from every dataset staged there).
BUCKET = "scones-ic-doc-check"
ROLE = "arn:aws:iam::123456789012:role/scones-sagemaker-role"
# IC-Hyperparameter.html: every name the algorithm takes (a misspelt one is rejected by AWS).
DOCUMENTED_HYPERPARAMETERS = {
    "num_classes", "num_training_samples", "augmentation_type", "beta_1", "beta_2",
    "checkpoint_frequency", "early_stopping", "early_stopping_min_epochs",
    "early_stopping_patience", "early_stopping_tolerance", "epochs", "eps", "eval_metric",
    "gamma", "image_shape", "kv_store", "learning_rate", "lr_scheduler_factor",
    "lr_scheduler_step", "mini_batch_size", "momentum", "multi_label", "num_layers",
    "optimizer", "precision_dtype", "resize", "top_k", "use_pretrained_model",
    "use_weighted_loss", "weight_decay",
}  # fmt: skip


@pytest.fixture(scope="module")
def job(emulator, tmp_path_factory):
    """(CreateTrainingJob request, S3 client): the staged data in the emulator, the job captured."""
    source = ev.write_synthetic_shapes(tmp_path_factory.mktemp("shapes"), num_classes=3)
    names = [
        c["name"] for _, c in sorted(json.loads((source / "classes.json").read_text()).items())
    ]
    stage.stage(source, ",".join(names), bucket=BUCKET, prefix=PREFIX,
                out=tmp_path_factory.mktemp("staged"), validation_fraction=0.2)  # fmt: skip
    s3 = boto3.client("s3", region_name=config.REGION)  # AWS_ENDPOINT_URL: the emulator
    sagemaker = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    ).client("sagemaker")
    settings = CloudSettings(region="us-east-1", bucket=BUCKET, role_arn=ROLE,
                             dataset_prefix=PREFIX)  # fmt: skip
    captured = {}
    with Stubber(sagemaker) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": "arn:x"}, None)
        sagemaker.meta.events.register(
            "provide-client-params.sagemaker.CreateTrainingJob",
            lambda params, **_: captured.update(params),
        )
        training.start_training(CloudClients(sagemaker, s3), settings, name="ic", use_sdk=False)
        stub.assert_no_pending_responses()
    return captured, s3


def _channels(request: dict) -> dict[str, dict]:
    return {c["ChannelName"]: c for c in request["InputDataConfig"]}


def _uri(channel: dict) -> tuple[str, str]:
    bucket, _, key = channel["DataSource"]["S3DataSource"]["S3Uri"][5:].partition("/")
    return bucket, key


def _lst(s3, channel: dict) -> list[list[str]]:
    bucket, key = _uri(channel)
    text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [line.split("\t") for line in text.splitlines() if line.strip()]


def test_io_image_format_has_exactly_the_four_channels(job) -> None:
    """IO "Train with Image Format": train, validation, train_lst and validation_lst."""
    request, _ = job
    assert set(_channels(request)) == {"train", "validation", "train_lst", "validation_lst"}


def test_io_all_four_channels_are_application_x_image_in_file_mode(job) -> None:
    """IO: "Set the content type for all four channels to application/x-image"; image files
    train in File mode (Pipe mode needs RecordIO or an augmented manifest)."""
    request, _ = job
    assert {c["ContentType"] for c in request["InputDataConfig"]} == {"application/x-image"}
    assert request["AlgorithmSpecification"]["TrainingInputMode"] == "File"


def test_io_training_and_validation_images_are_in_different_folders(job) -> None:
    """IO Note: "you must store the training and validation data in different folders"."""
    channels = _channels(job[0])
    train, validation = _uri(channels["train"])[1], _uri(channels["validation"])[1]
    assert train.endswith("/") and validation.endswith("/")
    assert not train.startswith(validation) and not validation.startswith(train)


def test_io_each_lst_channel_names_one_lst_file(job) -> None:
    """IO: "Specify one .lst file in each of the train_lst and validation_lst channels"."""
    request, s3 = job
    for name in ("train_lst", "validation_lst"):
        bucket, key = _uri(_channels(request)[name])
        assert key.endswith(".lst")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]
        assert [o["Key"] for o in listed] == [key]  # the S3Prefix matches that one object


@pytest.mark.parametrize("split", ["train", "validation"])
def test_io_lst_lines_are_index_label_relative_path(job, split: str) -> None:
    """IO: a tab-separated file with three columns: a unique image index, the class label index
    (numbered successively from 0) and the image's path relative to its channel."""
    request, s3 = job
    rows = _lst(s3, _channels(request)[f"{split}_lst"])
    assert rows and all(len(row) == 3 for row in rows)
    indices = [int(row[0]) for row in rows]
    assert len(set(indices)) == len(indices)
    labels = {int(row[1]) for row in rows}
    assert labels == set(range(len(labels)))
    bucket, folder = _uri(_channels(request)[split])
    for _, _, path in rows:
        assert not path.startswith("/") and s3.head_object(Bucket=bucket, Key=folder + path)


def test_hp_num_classes_is_the_number_of_classes_in_the_data(job) -> None:
    """HP num_classes: Required, positive integer, "the number of classes in the dataset"."""
    request, s3 = job
    labels = {int(row[1]) for row in _lst(s3, _channels(request)["train_lst"])}
    assert request["HyperParameters"]["num_classes"] == str(len(labels)) == "3"


def test_hp_num_training_samples_is_the_train_lst_length(job) -> None:
    """HP num_training_samples: Required, positive integer, the training examples' count."""
    request, s3 = job
    samples = len(_lst(s3, _channels(request)["train_lst"]))
    assert request["HyperParameters"]["num_training_samples"] == str(samples)
    assert samples > 0


def test_hp_values_have_the_documented_forms(job) -> None:
    """HP image_shape 'num_channels,height,width'; epochs and mini_batch_size positive
    integers; learning_rate a float in [0, 1]. API: every value is a string."""
    hyperparameters = job[0]["HyperParameters"]
    assert all(isinstance(v, str) for v in hyperparameters.values())
    assert re.fullmatch(r"3,\d+,\d+", hyperparameters["image_shape"])
    assert int(hyperparameters["epochs"]) > 0 and int(hyperparameters["mini_batch_size"]) > 0
    assert 0 <= float(hyperparameters["learning_rate"]) <= 1


def test_hp_every_name_is_one_the_algorithm_documents(job) -> None:
    assert set(job[0]["HyperParameters"]) <= DOCUMENTED_HYPERPARAMETERS


def test_a_manifest_with_skipped_labels_is_refused_before_any_job(emulator) -> None:
    """IO: labels "are numbered successively and the numbering should start with 0"."""
    s3 = boto3.client("s3", region_name=config.REGION)
    s3.create_bucket(Bucket=BUCKET)
    key = f"{PREFIX}bad/train.lst"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"0\t0\ta.png\n1\t2\tb.png\n")
    with pytest.raises(training.DatasetNotStaged, match=r"labels \[0, 2\] are not 0..1"):
        training.read_lst(s3, BUCKET, key)
