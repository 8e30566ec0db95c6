"""cloud/policies: valid IAM documents, least privilege, and enough for what the code does."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from cloud import iam
from cloud.endpoint import data_capture_config, model_request
from cloud.settings import CloudSettings
from cloud.training import builtin_training_request

ACCOUNT = "123456789012"
REGION = "eu-west-1"
SETTINGS = CloudSettings(
    region=REGION,
    bucket="scones-data",
    role_arn=f"arn:aws:iam::{ACCOUNT}:role/scones-sagemaker-role",
)
VALUES = iam.policy_values(SETTINGS, ACCOUNT)
# Actions AWS authorizes on "*" only (no resource-level permissions), so "*" is least privilege.
STAR_ONLY_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "sagemaker:ListEndpointConfigs",
    "sagemaker:ListModels",
    "sagemaker:ListTrainingJobs",
    "states:ListStateMachines",
    "states:ValidateStateMachineDefinition",
}
# A key id or secret looks like this; none may be committed.
CREDENTIAL_RE = re.compile(r"(AKIA|ASIA)[A-Z0-9]{16}|aws_secret_access_key", re.IGNORECASE)


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allows(policy: dict, action: str, resource: str) -> bool:
    """Whether an Allow statement matches action and resource (conditions not evaluated)."""
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        if not any(fnmatch.fnmatch(action.lower(), a.lower()) for a in _list(statement["Action"])):
            continue
        if any(fnmatch.fnmatchcase(resource, r) for r in _list(statement["Resource"])):
            return True
    return False


def s3_arn(uri: str) -> str:
    return "arn:aws:s3:::" + uri.removeprefix("s3://")


@pytest.mark.parametrize("name", iam.policy_names())
def test_policy_renders_to_a_complete_iam_document(name: str) -> None:
    raw = (iam.POLICY_DIR / f"{name}.json").read_text()
    assert not CREDENTIAL_RE.search(raw)
    assert not re.search(r"\d{12}", raw), "account ids are placeholders, never literals"
    policy = iam.render_policy(name, VALUES)
    assert "${" not in json.dumps(policy)
    assert policy["Version"] == "2012-10-17"
    sids = [s.get("Sid") for s in policy["Statement"]]
    assert len(set(sids)) == len(sids), "statement ids must be unique"
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert not {"NotAction", "NotResource", "NotPrincipal"} & set(statement)


@pytest.mark.parametrize("name", [n for n in iam.policy_names() if not n.endswith(".trust")])
def test_permissions_have_no_wildcard_actions_or_needless_star_resources(name: str) -> None:
    policy = iam.render_policy(name, VALUES)
    for statement in policy["Statement"]:
        actions = _list(statement["Action"])
        assert all(a != "*" and not a.endswith(":*") for a in actions), statement["Sid"]
        if "*" in _list(statement["Resource"]):
            assert set(actions) <= STAR_ONLY_ACTIONS, statement["Sid"]


@pytest.mark.parametrize("name", [n for n in iam.policy_names() if n.endswith(".trust")])
def test_trust_policy_lets_exactly_one_service_assume_the_role(name: str) -> None:
    policy = iam.render_policy(name, VALUES)
    (statement,) = policy["Statement"]
    assert statement["Action"] == "sts:AssumeRole"
    assert set(statement["Principal"]) == {"Service"}
    assert isinstance(statement["Principal"]["Service"], str)
    assert statement["Principal"]["Service"].endswith(".amazonaws.com")
    assert (iam.POLICY_DIR / f"{name.removesuffix('.trust')}.json").exists()


def test_execution_role_covers_the_training_job_and_data_capture() -> None:
    """Every S3 location the job reads or writes, and the capture destination, is allowed."""
    role = iam.render_policy("sagemaker-execution-role", VALUES)
    request = builtin_training_request(SETTINGS, "scones-ic-1", 900, "image")
    for channel in request["InputDataConfig"]:
        uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
        assert allows(role, "s3:GetObject", s3_arn(uri.rstrip("/") + "/x.png")), uri
    output = request["OutputDataConfig"]["S3OutputPath"]
    assert allows(role, "s3:PutObject", s3_arn(output + "scones-ic-1/output/model.tar.gz"))
    capture = data_capture_config(SETTINGS)["DestinationS3Uri"]
    assert allows(role, "s3:PutObject", s3_arn(capture + "/scones-classifier/AllTraffic/x.jsonl"))
    # and nothing else in the bucket
    assert not allows(role, "s3:PutObject", s3_arn("s3://scones-data/incoming/x.png"))
    assert not allows(role, "s3:GetObject", s3_arn("s3://other-bucket/datasets/x.png"))


def test_lambda_role_invokes_only_our_endpoint() -> None:
    role = iam.render_policy("lambda-role", VALUES)
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{SETTINGS.endpoint_name}"
    assert allows(role, "sagemaker:InvokeEndpoint", arn)
    assert not allows(role, "sagemaker:InvokeEndpoint", arn + "-other")


def test_operator_may_pass_the_execution_role_used_by_create_model() -> None:
    operator = iam.render_policy("operator", VALUES)
    role = model_request(SETTINGS, "image", "s3://scones-data/m.tar.gz")["ExecutionRoleArn"]
    assert allows(operator, "iam:PassRole", role)
    assert not allows(operator, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin")


def test_missing_placeholder_value_is_a_named_error() -> None:
    values = {k: v for k, v in VALUES.items() if k != "Bucket"}
    with pytest.raises(iam.PolicyError, match="Bucket"):
        iam.render_policy("lambda-role", values)


def test_values_cannot_break_out_of_their_json_string() -> None:
    values = {**VALUES, "Bucket": 'evil", "Action": "*'}
    policy = iam.render_policy("lambda-role", values)
    assert all(s["Action"] != "*" for s in policy["Statement"])


@pytest.mark.parametrize(
    ("region", "partition"),
    [("us-east-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")],
)
def test_partition_follows_the_region(region: str, partition: str) -> None:
    assert iam.partition(region) == partition
