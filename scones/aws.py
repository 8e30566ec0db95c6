"""AWS access for every scones command: client holders, resource names, buckets, zips, waiters."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import time
import zipfile
from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from scones import SconesError, StackDown, config

LOG = logging.getLogger(__name__)

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed: the same code gives the same CodeSha256, so no update
WAIT_STEP_S = 0.2
FUNCTION_READY_TIMEOUT_S = 180.0  # a first python3.X use may build its runtime (pip, ~10 s)
MISSING_BUCKET = ("404", "NoSuchBucket", "NotFound")


class AwsError(SconesError):
    """An AWS (or emulator) resource is not as a command needs it."""


class Unreachable(StackDown):
    """The emulator (local target) or AWS (cloud target) does not answer."""


class BucketError(AwsError):
    """The bucket cannot be reached or created."""


class NotDeployed(AwsError):
    """A state machine that `scones deploy` makes does not exist on the target."""


# ------------------------------ Names ------------------------------


@dataclass(frozen=True)
class Names:
    """Every resource name, all starting with SCONES_RESOURCE_PREFIX."""

    prefix: str

    def function(self, module: str) -> str:
        return f"{self.prefix}-{module.replace('_', '-')}"

    def state_machine(self, key: str) -> str:
        return f"{self.prefix}-{key.replace('_', '-')}"

    @property
    def topic(self) -> str:
        return f"{self.prefix}-notifications"

    @property
    def notifications_queue(self) -> str:
        return f"{self.prefix}-notifications"

    @property
    def review_queue(self) -> str:
        return f"{self.prefix}-review"

    @property
    def rule(self) -> str:
        return f"{self.prefix}-incoming"

    def role(self, kind: str) -> str:
        return f"{self.prefix}-{kind}-role"


def names() -> Names:
    return Names(config.RESOURCE_PREFIX)


# ------------------------------ Client holders ------------------------------


class _ClientHolder:
    """One boto3 session's clients, made on first use and shared (boto3 clients are
    thread-safe): ``holder("s3")`` or ``holder.s3``; ``lambda_`` and ``sfn`` name lambda and
    stepfunctions."""

    def __init__(self, session: boto3.session.Session, cfg: Config, endpoint: str | None) -> None:
        self._session, self._config, self._endpoint = session, cfg, endpoint
        self._clients: dict[str, object] = {}

    def __call__(self, service: str):  # noqa: ANN204 - boto3 client types are dynamic
        name = {"lambda_": "lambda", "sfn": "stepfunctions"}.get(service, service)
        if name not in self._clients:
            self._clients[name] = self._session.client(
                name, config=self._config, endpoint_url=self._endpoint
            )
        return self._clients[name]

    def __getattr__(self, service: str):  # noqa: ANN204
        if service.startswith("_"):
            raise AttributeError(service)
        return self(service)


class Clients(_ClientHolder):
    """boto3 clients for the current target (AWS_ENDPOINT_URL points them at the emulator)."""

    def __init__(self) -> None:
        config.apply_target_env()
        # 32 connections: demo, load and report call from many threads at once
        super().__init__(
            boto3.session.Session(region_name=config.REGION),
            Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32),
            None,  # boto3 reads AWS_ENDPOINT_URL itself (per service too)
        )
        self._identity: dict | None = None

    @property
    def identity(self) -> dict:
        if self._identity is None:
            try:
                self._identity = self.sts.get_caller_identity()
            except Exception as err:  # no credentials, emulator down, no network
                raise Unreachable(f"cannot reach {where()}: {err}; {hint()}") from err
        return self._identity

    @property
    def account(self) -> str:
        return self.identity["Account"]

    @property
    def partition(self) -> str:
        return self.identity["Arn"].split(":")[1]

    def arn(self, service: str, resource: str, region: bool = True) -> str:
        where = config.REGION if region else ""
        return f"arn:{self.partition}:{service}:{where}:{self.account}:{resource}"


class AccountClients(_ClientHolder):
    """boto3 clients for one account and region of the emulator (a 12-digit key id = account)."""

    def __init__(self, account: str, region: str) -> None:
        self.account, self.region = account, region
        self.endpoint = os.environ.get("AWS_ENDPOINT_URL") or config.emulator_url()
        super().__init__(
            boto3.session.Session(
                aws_access_key_id=account, aws_secret_access_key="test", region_name=region
            ),
            Config(
                retries={"max_attempts": 3, "mode": "standard"},
                read_timeout=120,
                max_pool_connections=32,  # staging uploads with 16 threads
            ),
            self.endpoint,
        )

    def check(self) -> None:
        """The emulator answers, and answers as this account (per-account state works)."""
        try:
            who = self("sts").get_caller_identity()
        except Exception as err:  # connection refused, emulator starting
            raise Unreachable(
                f"cannot reach the emulator at {self.endpoint} ({err}); start it with `scones up`"
            ) from err
        if who.get("Account") != self.account:
            raise AwsError(
                f"the emulator at {self.endpoint} answers as account {who.get('Account')}, not "
                f"{self.account}; it must map 12-digit access key ids to accounts (LocalStack does)"
            )


def s3_client(workers: int):  # noqa: ANN201 - boto3 client type is dynamic
    """An S3 client for ``workers`` threads at once (bulk uploads); the current target's S3."""
    config.apply_target_env()  # local target: the emulator, even when called as a library
    cfg = Config(
        max_pool_connections=workers,
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
    )
    return boto3.client("s3", region_name=config.REGION, config=cfg)


def where() -> str:
    """What the current target's calls reach, for messages."""
    return f"the emulator at {config.emulator_url()}" if config.TARGET == "local" else "AWS"


def hint() -> str:
    """What to do when the current target does not answer."""
    if config.TARGET == "local":
        return "start the stack with `scones up`"
    return "check your AWS credentials and SCONES_REGION"


def error_code(err: Exception) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    return getattr(err, "response", {}).get("Error", {}).get("Code", "")


# ------------------------------ S3 ------------------------------


def ensure_bucket(s3, bucket: str, region: str | None = None) -> bool:  # noqa: ANN001
    """Create the bucket when it is missing; True when created. Raises BucketError, or
    Unreachable when S3 does not answer."""
    region = region or config.REGION
    where_ = s3.meta.endpoint_url
    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as err:
        code = error_code(err)
        if code not in MISSING_BUCKET:
            raise BucketError(
                f"cannot use bucket {bucket!r} at {where_}: {code}; pass --bucket NAME of a bucket "
                "you own"
            ) from err
    except BotoCoreError as err:
        raise Unreachable(
            f"cannot reach S3 at {where_} ({err}); run `scones up` or check AWS_ENDPOINT_URL, "
            "or pass --no-upload"
        ) from err
    kwargs: dict = {"Bucket": bucket}
    if region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as err:
        error = err.response.get("Error", {})
        if error.get("Code") in ("BucketAlreadyOwnedByYou",):
            return False
        raise BucketError(
            f"cannot create bucket {bucket!r}: {error.get('Code')} "
            f"{str(error.get('Message', '')).rstrip('.')}; "
            "pass --bucket NAME (3-63 lowercase letters, digits, dots, hyphens)"
        ) from err
    except BotoCoreError as err:
        raise Unreachable(f"cannot create bucket {bucket!r} at {where_}: {err}") from err
    LOG.info("created bucket %s", bucket)
    return True


# ------------------------------ Lambda ------------------------------


def deterministic_zip(name: str, data: bytes) -> bytes:
    """A one-file zip, byte-identical for identical content (so CodeSha256 says "unchanged")."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, data)
    return buffer.getvalue()


def code_sha256(data: bytes) -> str:
    """Lambda's CodeSha256: base64 of the zip's SHA-256."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def wait_function_ready(lam, name: str, error: type[SconesError] = AwsError) -> None:  # noqa: ANN001
    """Until the function is Active and its last update is done (AWS refuses updates before).

    Raises ``error`` when it failed or is still not ready after FUNCTION_READY_TIMEOUT_S.
    """
    deadline = time.monotonic() + FUNCTION_READY_TIMEOUT_S
    while True:
        cfg = lam.get_function_configuration(FunctionName=name)
        state, update = cfg.get("State", "Active"), cfg.get("LastUpdateStatus", "Successful")
        if state == "Failed" or update == "Failed":
            reason = cfg.get("StateReason") or cfg.get("LastUpdateStatusReason")
            raise error(f"function {name} cannot run: {reason}")
        if state == "Active" and update == "Successful":
            return
        if time.monotonic() > deadline:
            raise error(
                f"function {name} still {state}/{update} after {FUNCTION_READY_TIMEOUT_S:.0f} s;"
                " see the emulator log"
            )
        time.sleep(WAIT_STEP_S)


# ------------------------------ Step Functions ------------------------------


def state_machine_exists(sfn, arn: str) -> bool:  # noqa: ANN001
    """Whether DescribeStateMachine finds ``arn``; Unreachable when Step Functions does not
    answer."""
    try:
        sfn.describe_state_machine(stateMachineArn=arn)
    except sfn.exceptions.StateMachineDoesNotExist:
        return False
    except ClientError:
        raise
    except Exception as err:  # unreachable emulator, no credentials
        raise Unreachable(f"cannot reach Step Functions ({err}); {hint()}") from err
    return True


def deployed_state_machine(c: Clients, key: str) -> str:
    """The ARN of the state machine `scones deploy` made for ``key``; NotDeployed if missing."""
    arn = c.arn("states", f"stateMachine:{names().state_machine(key)}")
    if not state_machine_exists(c.sfn, arn):
        raise NotDeployed(f"{arn} does not exist; run `scones deploy` (or `scones demo`)")
    return arn
