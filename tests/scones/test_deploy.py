"""`scones deploy` / `scones cleanup` against the emulator: complete, idempotent, reversible."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest

from cloud import iam
from scones import config, deploy

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def state_dir() -> Path:
    """Overrides tests/scones/conftest.py's per-test state dir: these tests drive the session's
    stack (its pid files live in the session's SCONES_STATE_DIR)."""
    return config.STATE_DIR


@pytest.fixture(scope="module")
def deployed(emulator) -> deploy.DeployResult:
    return deploy.deploy()


def test_deploy_creates_every_resource(deployed, aws_client):
    lam, sfn, events = aws_client("lambda"), aws_client("stepfunctions"), aws_client("events")
    assert set(deployed.functions) == set(deploy.FUNCTIONS)
    for module, arn in deployed.functions.items():
        cfg = lam.get_function_configuration(FunctionName=arn)
        assert cfg["Handler"] == f"{module}.handler"
        assert cfg["Runtime"] == config.LAMBDA_RUNTIME
    for arn in deployed.state_machines.values():
        definition = sfn.describe_state_machine(stateMachineArn=arn)["definition"]
        assert "${" not in definition  # every substitution filled
    targets = events.list_targets_by_rule(Rule=deploy.names().rule)["Targets"]
    assert [t["Arn"] for t in targets] == [deployed.state_machines["image_workflow"]]
    pattern = json.loads(events.describe_rule(Name=deploy.names().rule)["EventPattern"])
    assert pattern["detail"]["object"]["key"] == [{"prefix": config.INCOMING_PREFIX}]
    notification = aws_client("s3").get_bucket_notification_configuration(Bucket=deployed.bucket)
    assert "EventBridgeConfiguration" in notification
    subscriptions = aws_client("sns").list_subscriptions_by_topic(TopicArn=deployed.topic_arn)
    assert [s["Protocol"] for s in subscriptions["Subscriptions"]] == ["sqs"]
    assert aws_client("sqs").get_queue_url(QueueName=deploy.names().review_queue)["QueueUrl"]


def test_deploy_configures_the_functions_from_config(deployed, aws_client):
    lam = aws_client("lambda")
    classify = lam.get_function_configuration(FunctionName=deployed.functions["classify_image"])
    env = classify["Environment"]["Variables"]
    assert env["ENDPOINT_NAME"] == config.ENDPOINT_NAME
    assert env["CLASS_NAMES"] == ",".join(deploy.class_names())
    assert env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == config.model_url()  # local target only
    filt = lam.get_function_configuration(FunctionName=deployed.functions["filter_inferences"])
    env = filt["Environment"]["Variables"]
    assert float(env["THRESHOLD"]) == config.CONFIDENCE_THRESHOLD
    assert json.loads(env["LOADING_BAYS"]) == json.loads(config.LOADING_BAYS)


def test_deploy_again_changes_nothing(deployed):
    again = deploy.deploy()

    assert again.changed == []
    assert again.functions == deployed.functions
    assert again.state_machines == deployed.state_machines
    assert again.topic_arn == deployed.topic_arn


def test_deploy_threshold_override_updates_only_the_filter(deployed, aws_client):
    lam = aws_client("lambda")
    try:
        changed = deploy.deploy(threshold=1.01).changed
        env = lam.get_function_configuration(FunctionName=deployed.functions["filter_inferences"])[
            "Environment"
        ]["Variables"]
        assert env["THRESHOLD"] == "1.01"
        assert changed == [f"function {deploy.names().function('filter_inferences')} configuration"]
    finally:
        deploy.deploy()


def test_cleanup_removes_what_deploy_made_and_deploy_restores_it(emulator, aws_client, monkeypatch):
    # A prefix of its own, listening elsewhere: the workflow tests' deployment stays untouched.
    monkeypatch.setattr(config, "RESOURCE_PREFIX", "scones-cleanup-test")
    monkeypatch.setattr(config, "INCOMING_PREFIX", "cleanup-test-incoming/")
    made = deploy.deploy()

    listed = deploy.cleanup(dry_run=True)
    assert aws_client("lambda").get_function(FunctionName=made.functions["classify_image"])
    done = deploy.cleanup()

    assert done == listed
    assert len(done) == 2 + 2 + 4 + 2 + 1 + 3  # rule targets + rule, machines, functions, ...
    assert all("scones-cleanup-test" in line for line in done)
    with pytest.raises(aws_client("lambda").exceptions.ResourceNotFoundException):
        aws_client("lambda").get_function(FunctionName=made.functions["classify_image"])
    assert deploy.cleanup() == []  # nothing left
    restored = deploy.deploy()
    assert restored.state_machines == made.state_machines
    deploy.cleanup()


def test_cleanup_force_also_deletes_the_bucket_and_its_objects(emulator, aws_client, monkeypatch):
    monkeypatch.setattr(config, "RESOURCE_PREFIX", "scones-force-test")
    monkeypatch.setattr(config, "BUCKET", "scones-force-test-bucket")  # not the session's data
    s3 = aws_client("s3")
    s3.create_bucket(Bucket=config.BUCKET)
    for n in range(3):
        s3.put_object(Bucket=config.BUCKET, Key=f"train/{n}.png", Body=b"x")

    assert deploy.cleanup(dry_run=True) == []  # without --force the bucket is never touched
    listed = deploy.cleanup(dry_run=True, force=True)
    assert listed == [f"bucket {config.BUCKET} (and every object in it)"]
    assert s3.list_objects_v2(Bucket=config.BUCKET)["KeyCount"] == 3  # a dry run deletes nothing
    assert deploy.cleanup(force=True) == listed
    assert config.BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert deploy.cleanup(force=True) == []  # cleanup after cleanup is a no-op


# ------------------------------ Pure parts (no emulator) ------------------------------


def test_a_lambda_zip_is_byte_identical_for_identical_code():
    first, second = deploy.zip_lambda("classify_image"), deploy.zip_lambda("classify_image")

    assert first == second  # so redeploying unchanged code is no update
    assert deploy.code_sha256(first) == deploy.code_sha256(second)


def test_a_lambda_zip_holds_only_its_own_file():
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(deploy.zip_lambda("filter_inferences"))).namelist()

    assert names == ["filter_inferences.py"]  # runs on its own: no scones/ inside


def test_render_definition_refuses_a_missing_substitution(tmp_path):
    asl = tmp_path / "x.asl.json"
    asl.write_text('{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${Fn}"}}}')

    with pytest.raises(deploy.DeployError, match="Fn"):
        deploy.render_definition(asl, {})


def test_class_names_come_from_the_model_json(tmp_path, monkeypatch):
    (tmp_path / "model.json").write_text(json.dumps({"classes": ["car", "bus", "bike"]}))
    monkeypatch.setattr(config, "MODEL_DIR", tmp_path)
    monkeypatch.setattr(config, "CLASS_NAMES", [])

    assert deploy.class_names() == ["car", "bus", "bike"]


def test_bad_loading_bays_name_the_variable(monkeypatch):
    monkeypatch.setattr(config, "LOADING_BAYS", "bicycle=bay-1")

    with pytest.raises(deploy.DeployError, match="SCONES_LOADING_BAYS"):
        deploy.loading_bays()


def test_attached_policies_are_the_files_test_iam_checks(deployed, aws_client):
    """One source for IAM: each role's policy and trust policy is cloud/policies/, rendered."""
    iam_client, values = (
        aws_client("iam"),
        iam.policy_values(config.cloud_settings(), deployed.account, config.RESOURCE_PREFIX),
    )
    for kind, name in deploy.ROLE_POLICY_FILES.items():
        role = deploy.names().role(kind)
        attached = iam_client.get_role_policy(RoleName=role, PolicyName=f"{role}-policy")
        assert _document(attached["PolicyDocument"]) == iam.render_policy(name, values), role
        trust = iam_client.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
        assert _document(trust) == iam.render_policy(f"{name}.trust", values), role
    sqs = aws_client("sqs")
    url = sqs.get_queue_url(QueueName=deploy.names().notifications_queue)["QueueUrl"]
    policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]
    assert json.loads(policy["Policy"]) == iam.render_policy(
        deploy.NOTIFICATIONS_QUEUE_POLICY, values
    )


def test_deploy_writes_no_policy_of_its_own():
    """No inline statements in deploy.py: a policy there would escape the least-privilege tests."""
    source = Path(deploy.__file__).read_text()
    assert '"Effect"' not in source and "sts:AssumeRole" not in source


def _document(value: str | dict) -> dict:
    """IAM returns policy documents URL-encoded (AWS) or as parsed JSON (boto3 decodes some)."""
    return value if isinstance(value, dict) else json.loads(unquote(value))
