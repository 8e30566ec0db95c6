"""`scones deploy` / `scones cleanup`: the workflow's resources, on the emulator or on AWS."""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from botocore.exceptions import ClientError

from cloud import cleanup as sagemaker_cleanup
from cloud.clients import CloudClients
from cloud.iam import policy_values, render_policy
from scones import PROJECT_ROOT, SconesError, UsageError, config
from scones.aws import (
    Clients,
    code_sha256,
    deterministic_zip,
    ensure_bucket,
    error_code,
    names,
    wait_function_ready,
)

LOG = logging.getLogger(__name__)

LAMBDA_DIR = PROJECT_ROOT / "lambdas"
ASL_DIR = PROJECT_ROOT / "statemachine"
# One Lambda per file in lambdas/; the handler is always `handler`.
FUNCTIONS = ("serialize_image_data", "classify_image", "filter_inferences", "summarize_batch")
STATE_MACHINES = ("image_workflow", "batch_workflow")
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
# A new IAM role takes ~10 s to be usable on AWS; creating with it fails until then.
ROLE_PROPAGATION_TIMEOUT_S = 90.0
EVENTS_TARGET_ID = "image-workflow"
# Each role's permissions and trust policy: cloud/policies/<file>.json and <file>.trust.json, the
# documents tests/cloud/test_iam.py checks for least privilege (one source, here and on AWS).
ROLE_POLICY_FILES = {
    "lambda": "lambda-role",
    "states": "stepfunctions-role",
    "events": "events-role",
}
# The notifications queue's resource policy: only our topic may send to it.
NOTIFICATIONS_QUEUE_POLICY = "notifications-queue.resource"


class DeployError(SconesError):
    """A workflow resource could not be created, updated or deleted."""


class DeploySettingError(DeployError, UsageError):
    """A setting deploy reads is malformed, e.g. SCONES_LOADING_BAYS (exit code 2)."""


def existing_role(kind: str) -> str:
    """The role ARN the user named for ``kind`` (not ours to create or delete), else empty."""
    return {
        "lambda": config.LAMBDA_ROLE_ARN,
        "states": config.STATES_ROLE_ARN,
        "events": config.EVENTS_ROLE_ARN,
    }[kind]


@dataclass
class DeployResult:
    """What `scones deploy` created or found: names, ARNs and URLs."""

    target: str
    region: str
    account: str
    bucket: str
    functions: dict[str, str] = field(default_factory=dict)  # module -> function ARN
    state_machines: dict[str, str] = field(default_factory=dict)  # key -> state machine ARN
    topic_arn: str = ""
    notifications_queue_url: str = ""
    review_queue_url: str = ""
    rule_arn: str = ""
    roles: dict[str, str] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)  # what this run created or updated
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------ Inputs: code, definitions, settings ------------------------------


def class_names() -> list[str]:
    """SCONES_CLASS_NAMES, else the served model's model.json classes, else the course's two."""
    if config.CLASS_NAMES:
        return list(config.CLASS_NAMES)
    meta = config.MODEL_DIR / "model.json"
    try:
        return [str(c) for c in json.loads(meta.read_text())["classes"]]
    except (OSError, ValueError, KeyError) as err:
        LOG.warning(
            "no classes from %s (%s); set SCONES_CLASS_NAMES. Using bicycle,motorcycle", meta, err
        )
        return ["bicycle", "motorcycle"]


def loading_bays() -> dict[str, str]:
    """SCONES_LOADING_BAYS parsed: label -> loading bay."""
    try:
        bays = json.loads(config.LOADING_BAYS)
        if not isinstance(bays, dict):
            raise ValueError("not a JSON object")
    except ValueError as err:
        raise DeploySettingError(
            f'SCONES_LOADING_BAYS must be a JSON object like {{"bicycle": "bay-1"}} ({err})'
        ) from err
    return {str(k): str(v) for k, v in bays.items()}


def function_environment(
    module: str, threshold: float | None = None, runtime_url: str | None = None
) -> dict[str, str]:
    """Each function's few variables; locally the endpoint URL points at the model server.

    ``runtime_url``: the SageMaker runtime API to call instead (an endpoint container's).
    """
    classes = ",".join(class_names())
    env = {
        "serialize_image_data": {},
        "classify_image": {
            "ENDPOINT_NAME": config.ENDPOINT_NAME,
            "CLASS_NAMES": classes,
            # Below the function's own timeout: a hung endpoint is EndpointUnavailable (retried),
            # not a Lambda timeout.
            "INVOKE_TIMEOUT_S": str(max(1, config.LAMBDA_TIMEOUT - 5)),
        },
        "filter_inferences": {
            "THRESHOLD": str(config.CONFIDENCE_THRESHOLD if threshold is None else threshold),
            "CLASS_NAMES": classes,
            "LOADING_BAYS": json.dumps(loading_bays(), sort_keys=True),
        },
        "summarize_batch": {},
    }[module]
    if module == "classify_image" and config.TARGET == "local":
        # The emulator injects AWS_ENDPOINT_URL (itself); SageMaker is our model server instead.
        env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = runtime_url or config.model_url()
    return env


def zip_lambda(module: str) -> bytes:
    """The function's one file as a zip, byte-identical for identical code."""
    source = LAMBDA_DIR / f"{module}.py"
    return deterministic_zip(source.name, source.read_bytes())


def placeholders(text: str) -> set[str]:
    """The ${Name} substitutions an ASL file needs."""
    return set(PLACEHOLDER.findall(text))


def render_definition(path: Path, substitutions: dict[str, object]) -> str:
    """The ASL text with every ${Name} replaced, like DefinitionSubstitutions; checked as JSON."""
    text = path.read_text()
    missing = placeholders(text) - substitutions.keys()
    if missing:
        raise DeployError(f"{path.name} needs substitutions {sorted(missing)} that deploy lacks")
    rendered = PLACEHOLDER.sub(lambda m: str(substitutions[m.group(1)]), text)
    json.loads(rendered)  # a value that broke the JSON is our bug: fail here, not in AWS
    return rendered


# ------------------------------ Resources ------------------------------


class Deployer:
    """Creates or updates each resource; every step is safe to repeat."""

    def __init__(
        self, clients: Clients, threshold: float | None = None, runtime_url: str | None = None
    ) -> None:
        self.c = clients
        self.n = names()
        self.threshold = threshold
        self.runtime_url = runtime_url
        self.result = DeployResult(config.TARGET, config.REGION, clients.account, config.BUCKET)
        self.new_roles = False
        self.policy_values = policy_values(
            config.cloud_settings(), clients.account, config.RESOURCE_PREFIX
        )

    def changed(self, what: str) -> None:
        LOG.info("deploy: %s", what)
        self.result.changed.append(what)

    # -- S3 --
    def bucket(self) -> None:
        s3, bucket = self.c.s3, config.BUCKET
        if ensure_bucket(s3, bucket):
            self.changed(f"bucket {bucket}")
        current = s3.get_bucket_notification_configuration(Bucket=bucket)
        current.pop("ResponseMetadata", None)
        if "EventBridgeConfiguration" not in current:
            # Put replaces the whole configuration: keep whatever else is there.
            s3.put_bucket_notification_configuration(
                Bucket=bucket,
                NotificationConfiguration={**current, "EventBridgeConfiguration": {}},
            )
            self.changed(f"bucket {bucket} -> EventBridge notifications")

    # -- IAM --
    def role(self, kind: str, policy: str, existing: str) -> str:
        """The role ``<prefix>-<kind>-role`` (created if missing) with ``policy`` attached."""
        if existing:  # accounts that may not create roles (course labs) name one instead
            self.result.roles[kind] = existing
            return existing
        iam, name = self.c.iam, self.n.role(kind)
        try:
            arn = iam.get_role(RoleName=name)["Role"]["Arn"]
        except Exception as err:
            if error_code(err) != "NoSuchEntity":
                raise DeployError(f"role {name}: {err}") from err
            arn = iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=self.policy_document(f"{ROLE_POLICY_FILES[kind]}.trust"),
                Description="scones workflow",
            )["Role"]["Arn"]
            self.new_roles = True
            self.changed(f"role {name}")
        iam.put_role_policy(RoleName=name, PolicyName=f"{name}-policy", PolicyDocument=policy)
        self.result.roles[kind] = arn
        return arn

    def roles(self) -> None:
        """The three roles with the policies of cloud/policies/, the files test_iam checks."""
        for kind, name in ROLE_POLICY_FILES.items():
            self.role(kind, self.policy_document(name), existing_role(kind))

    def policy_document(self, name: str) -> str:
        """cloud/policies/<name>.json with this deployment's values, as IAM and SQS take it."""
        return json.dumps(render_policy(name, self.policy_values))

    # -- SNS and SQS --
    def queue(self, name: str, attributes: dict[str, str]) -> tuple[str, str]:
        sqs = self.c.sqs
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except Exception as err:
            if "NonExistentQueue" not in error_code(err) and error_code(err) != "QueueDoesNotExist":
                raise DeployError(f"queue {name}: {err}") from err
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            self.changed(f"queue {name}")
        else:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, arn["Attributes"]["QueueArn"]

    def notifications(self) -> None:
        sns, n = self.c.sns, self.n
        topic = sns.create_topic(Name=n.topic)["TopicArn"]  # returns the existing one if any
        self.result.topic_arn = topic
        # SNS may deliver to the queue only with this policy (AWS checks it; LocalStack does not).
        url, queue_arn = self.queue(
            n.notifications_queue,
            {
                "MessageRetentionPeriod": str(4 * 24 * 3600),
                "Policy": self.policy_document(NOTIFICATIONS_QUEUE_POLICY),
            },
        )
        self.result.notifications_queue_url = url
        wanted = [("sqs", queue_arn)]
        if config.NOTIFY_EMAIL:
            wanted.append(("email", config.NOTIFY_EMAIL))
        if config.NOTIFY_HTTPS:
            wanted.append(("https", config.NOTIFY_HTTPS))
        have = {
            (s["Protocol"], s["Endpoint"])
            for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
            for s in page["Subscriptions"]
        }
        for protocol, endpoint in wanted:
            if (protocol, endpoint) not in have:
                sns.subscribe(TopicArn=topic, Protocol=protocol, Endpoint=endpoint)
                self.changed(f"subscription {protocol}:{endpoint}")

    def review_queue(self) -> None:
        url, _ = self.queue(
            self.n.review_queue,
            {
                "MessageRetentionPeriod": str(14 * 24 * 3600),  # the maximum: reviews may wait
            },
        )
        self.result.review_queue_url = url

    # -- Lambda --
    def function(self, module: str) -> str:
        lam, name = self.c.lambda_, self.n.function(module)
        code = zip_lambda(module)
        wanted = {
            "Runtime": config.LAMBDA_RUNTIME,
            "Handler": f"{module}.handler",
            "Role": self.result.roles["lambda"],
            "Timeout": config.LAMBDA_TIMEOUT,
            "MemorySize": config.LAMBDA_MEMORY,
            "Environment": {
                "Variables": function_environment(module, self.threshold, self.runtime_url)
            },
        }
        try:
            current = lam.get_function_configuration(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            arn = self._retry_role(
                lambda: lam.create_function(
                    FunctionName=name,
                    Code={"ZipFile": code},
                    Description=f"scones {module}",
                    Publish=False,
                    **wanted,
                )["FunctionArn"]
            )
            self.changed(f"function {name}")
            self._wait_function(name)
            return arn
        if current.get("CodeSha256") != code_sha256(code):
            self._wait_function(name)
            lam.update_function_code(FunctionName=name, ZipFile=code)
            self.changed(f"function {name} code")
            self._wait_function(name)
        have = {k: current.get(k) for k in wanted}
        have["Environment"] = {"Variables": current.get("Environment", {}).get("Variables", {})}
        if have != wanted:
            self._wait_function(name)
            self._retry_role(lambda: lam.update_function_configuration(FunctionName=name, **wanted))
            self.changed(f"function {name} configuration")
            self._wait_function(name)
        return current["FunctionArn"]

    def _wait_function(self, name: str) -> None:
        wait_function_ready(self.c.lambda_, name, DeployError)

    def _retry_role(self, call):
        """Run ``call``, retrying while AWS does not yet accept a just-created role."""
        deadline = time.monotonic() + (ROLE_PROPAGATION_TIMEOUT_S if self.new_roles else 0)
        while True:
            try:
                return call()
            except Exception as err:
                message = str(err).lower()
                role_not_ready = error_code(err) in (
                    "InvalidParameterValueException",
                    "AccessDeniedException",
                    "InvalidArn",
                ) and ("role" in message or "assume" in message)
                if not role_not_ready or time.monotonic() > deadline:
                    raise
                time.sleep(2)

    # -- Step Functions --
    def state_machine(self, key: str, substitutions: dict[str, object]) -> str:
        sfn, name = self.c.sfn, self.n.state_machine(key)
        definition = render_definition(ASL_DIR / f"{key}.asl.json", substitutions)
        role = self.result.roles["states"]
        arn = self.c.arn("states", f"stateMachine:{name}")
        try:
            current = sfn.describe_state_machine(stateMachineArn=arn)
        except sfn.exceptions.StateMachineDoesNotExist:
            self.validate_definition(name, definition)
            arn = self._retry_role(
                lambda: sfn.create_state_machine(
                    name=name,
                    definition=definition,
                    roleArn=role,
                    type="STANDARD",
                )["stateMachineArn"]
            )
            self.changed(f"state machine {name}")
            return arn
        if (
            json.loads(current["definition"]) != json.loads(definition)
            or current["roleArn"] != role
        ):
            self.validate_definition(name, definition)
            self._retry_role(
                lambda: sfn.update_state_machine(
                    stateMachineArn=arn,
                    definition=definition,
                    roleArn=role,
                )
            )
            self.changed(f"state machine {name} definition")
        return arn

    def validate_definition(self, name: str, definition: str) -> None:
        """On AWS, ValidateStateMachineDefinition first: a rejected definition changes nothing.

        https://docs.aws.amazon.com/step-functions/latest/apireference/API_ValidateStateMachineDefinition.html
        (the emulator parses the definition itself on create).
        """
        if config.TARGET != "cloud":
            return
        answer = self.c.sfn.validate_state_machine_definition(
            definition=definition, type="STANDARD", severity="ERROR"
        )
        if answer["result"] != "OK":
            problems = "; ".join(
                f"{d['code']} at {d.get('location', '?')}: {d['message']}"
                for d in answer.get("diagnostics", [])
            )
            raise DeployError(f"AWS rejects the definition of {name}: {problems}")

    # -- EventBridge --
    def incoming_rule(self) -> None:
        events, n = self.c.events, self.n
        pattern = {
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {
                "bucket": {"name": [config.BUCKET]},
                "object": {"key": [{"prefix": config.INCOMING_PREFIX}]},
            },
        }
        rule_arn = events.put_rule(
            Name=n.rule,
            EventPattern=json.dumps(pattern),
            State="ENABLED",
            Description=f"an object created under s3://{config.BUCKET}/{config.INCOMING_PREFIX} "
            "starts the image workflow",
        )["RuleArn"]
        target = {
            "Id": EVENTS_TARGET_ID,
            "Arn": self.result.state_machines["image_workflow"],
            "RoleArn": self.result.roles["events"],
        }
        have = events.list_targets_by_rule(Rule=n.rule).get("Targets", [])
        if [{k: t.get(k) for k in target} for t in have] != [target]:
            stale = [t["Id"] for t in have if t["Id"] != EVENTS_TARGET_ID]
            if stale:
                events.remove_targets(Rule=n.rule, Ids=stale)
            # The image workflow reads the "Object Created" event itself: no InputTransformer.
            events.put_targets(Rule=n.rule, Targets=[target])
            self.changed(f"rule {n.rule} -> {target['Arn']}")
        self.result.rule_arn = rule_arn

    def run(self) -> DeployResult:
        began = time.monotonic()
        self.bucket()
        self.roles()
        self.notifications()
        self.review_queue()
        for module in FUNCTIONS:
            self.result.functions[module] = self.function(module)
        fn = self.result.functions
        image = self.state_machine(
            "image_workflow",
            {
                "SerializeImageDataFunctionArn": fn["serialize_image_data"],
                "ClassifyImageFunctionArn": fn["classify_image"],
                "FilterInferencesFunctionArn": fn["filter_inferences"],
                "ReviewQueueUrl": self.result.review_queue_url,
                "NotificationTopicArn": self.result.topic_arn,
            },
        )
        self.result.state_machines["image_workflow"] = image
        self.result.state_machines["batch_workflow"] = self.state_machine(
            "batch_workflow",
            {
                "ImageWorkflowArn": image,
                "SummarizeBatchFunctionArn": fn["summarize_batch"],
                "NotificationTopicArn": self.result.topic_arn,
                "BatchMaxConcurrency": config.BATCH_MAX_CONCURRENCY,
                "BatchToleratedFailurePercentage": config.BATCH_TOLERATED_FAILURE_PERCENT,
            },
        )
        self.incoming_rule()
        self.result.seconds = round(time.monotonic() - began, 2)
        return self.result


def deploy(threshold: float | None = None, runtime_url: str | None = None) -> DeployResult:
    """Create or update, idempotently, every workflow resource on the current target.

    :param threshold: overrides SCONES_CONFIDENCE_THRESHOLD for this deployment (tests use 1.01
        to send every image to review).
    :param runtime_url: locally, the SageMaker runtime the classify function calls (default the
        model server; `--target sagemaker-local`: the endpoint's container).
    """
    return Deployer(Clients(), threshold, runtime_url).run()


def missing() -> list[str]:
    """The workflow resources that do not exist on the target (empty: deployed); changes nothing.

    The containers' deployer polls it: an emulator that restarted has lost everything. An
    unreachable target raises (botocore's error), rather than reporting everything missing.
    """
    c, n = Clients(), names()
    gone: list[str] = []
    try:
        c.s3.head_bucket(Bucket=config.BUCKET)
    except ClientError:
        gone.append(f"bucket {config.BUCKET}")
    for module in FUNCTIONS:
        try:
            c.lambda_.get_function(FunctionName=n.function(module))
        except ClientError:
            gone.append(f"function {n.function(module)}")
    arn = f"arn:{c.partition}:states:{config.REGION}:{c.account}:stateMachine:"
    for key in STATE_MACHINES:
        try:
            c.sfn.describe_state_machine(stateMachineArn=arn + n.state_machine(key))
        except ClientError:
            gone.append(f"state machine {n.state_machine(key)}")
    try:
        c.events.describe_rule(Name=n.rule)
    except ClientError:
        gone.append(f"rule {n.rule}")
    return gone


# ------------------------------ Cleanup ------------------------------


def cleanup(dry_run: bool = False, force: bool = False, artifacts: bool = False) -> list[str]:
    """Delete every resource the project made on the target, in dependency order.

    The bucket and its objects go only with ``force``; on AWS the SageMaker endpoint, its config
    and model go too, and training artifacts with ``artifacts``.
    :return: one line per resource deleted (or, with dry_run, that would be deleted).
    """
    c, n = Clients(), names()
    done: list[str] = []

    def step(what: str, call) -> None:
        if not dry_run:
            try:
                call()
            except Exception as err:  # gone meanwhile is fine; anything else is reported
                if "NotFound" not in error_code(err) and "NoSuch" not in error_code(err):
                    raise DeployError(f"cannot delete {what}: {err}") from err
        done.append(what)

    c.identity  # noqa: B018 -- fail early with a clear message when the target is unreachable
    try:
        targets = c.events.list_targets_by_rule(Rule=n.rule)["Targets"]
    except c.events.exceptions.ResourceNotFoundException:
        targets = None
    if targets is not None:
        if targets:
            step(
                f"rule {n.rule} targets",
                lambda: c.events.remove_targets(Rule=n.rule, Ids=[t["Id"] for t in targets]),
            )
        step(f"rule {n.rule}", lambda: c.events.delete_rule(Name=n.rule))
    for key in reversed(STATE_MACHINES):
        arn = c.arn("states", f"stateMachine:{n.state_machine(key)}")
        try:
            c.sfn.describe_state_machine(stateMachineArn=arn)
        except c.sfn.exceptions.StateMachineDoesNotExist:
            continue
        step(
            f"state machine {n.state_machine(key)}",
            lambda arn=arn: c.sfn.delete_state_machine(stateMachineArn=arn),
        )
    for module in FUNCTIONS:
        name = n.function(module)
        try:
            c.lambda_.get_function_configuration(FunctionName=name)
        except c.lambda_.exceptions.ResourceNotFoundException:
            continue
        step(f"function {name}", lambda name=name: c.lambda_.delete_function(FunctionName=name))
    for queue in (n.review_queue, n.notifications_queue):
        try:
            url = c.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        except Exception:
            continue
        step(f"queue {queue}", lambda url=url: c.sqs.delete_queue(QueueUrl=url))
    topic = c.arn("sns", n.topic)
    try:
        c.sns.get_topic_attributes(TopicArn=topic)
    except Exception:
        topic = ""
    if topic:
        step(f"topic {n.topic} (and its subscriptions)", lambda: c.sns.delete_topic(TopicArn=topic))
    for kind in ROLE_POLICY_FILES:
        name = n.role(kind)
        if existing_role(kind):
            continue  # not ours to delete
        try:
            policies = c.iam.list_role_policies(RoleName=name)["PolicyNames"]
        except Exception:
            continue

        def delete_role(name=name, policies=policies) -> None:
            for policy in policies:
                c.iam.delete_role_policy(RoleName=name, PolicyName=policy)
            c.iam.delete_role(RoleName=name)

        step(f"role {name}", delete_role)
    if config.TARGET == "cloud":
        done += _cleanup_sagemaker(dry_run, artifacts)
    if force:
        done += _cleanup_bucket(c, dry_run)
    return done


def _cleanup_sagemaker(dry_run: bool, artifacts: bool) -> list[str]:
    """The endpoint, endpoint config, model (and artifacts) cloud mode created."""
    settings = config.cloud_settings()
    clients = CloudClients.create(settings.region)
    names = sagemaker_cleanup.CleanupNames.from_settings(settings)
    plan = sagemaker_cleanup.plan_cleanup(clients, names, artifacts=artifacts)
    return [r.describe() for r in sagemaker_cleanup.cleanup(clients, plan, dry_run=dry_run)]


def _cleanup_bucket(c: Clients, dry_run: bool) -> list[str]:
    """The data bucket with every object in it (staged data, uploads, captures)."""
    try:
        c.s3.head_bucket(Bucket=config.BUCKET)
    except Exception:
        return []
    if not dry_run:
        for page in c.s3.get_paginator("list_objects_v2").paginate(Bucket=config.BUCKET):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                c.s3.delete_objects(Bucket=config.BUCKET, Delete={"Objects": keys})
        c.s3.delete_bucket(Bucket=config.BUCKET)
    return [f"bucket {config.BUCKET} (and every object in it)"]


# ------------------------------ Commands ------------------------------
