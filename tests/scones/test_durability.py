"""A restart, a SIGKILL or an outage loses nothing: a stack of its own, killed for real."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from scones import PROJECT_ROOT, config
from scones.stack import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "durability-data"  # not the workflow's: these objects are the test's alone


class Stack:
    """`scones` run as a user runs it, on its own state dir and ports, and boto3 clients to it."""

    def __init__(self, state_dir: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(
            SCONES_STATE_DIR=str(state_dir),
            SCONES_EMULATOR_VENV=str(config.EMULATOR_VENV),
            SCONES_EMULATOR_PORT=os.environ.get("SCONES_DURABILITY_EMULATOR_PORT")
            or str(free_port()),
            SCONES_MODEL_PORT=os.environ.get("SCONES_DURABILITY_MODEL_PORT") or str(free_port()),
        )
        self.url = f"http://127.0.0.1:{self.env['SCONES_EMULATOR_PORT']}"
        self.state_dir = state_dir

    def scones(
        self, *args: str, timeout: float = 420, stdin: str = ""
    ) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "scones", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=PROJECT_ROOT,
        )
        return done

    def up(self) -> None:
        done = self.scones("up")
        assert done.returncode == 0, done.stderr[-3000:]

    def client(self, service: str):
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=config.REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )

    def emulator_pid(self) -> int:
        return int((self.state_dir / "run" / "emulator.pid").read_text().split()[0])

    def sigkill_emulator(self) -> None:
        pid = self.emulator_pid()
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.1)


@pytest.fixture(scope="module")
def durable_stack(emulator, shared_data) -> Stack:
    """`scones up` + the staged dataset on a stack of its own; `scones down` at the end."""
    # beside the session's state, not under /tmp (Lambda environments mount their own /tmp)
    state_dir = config.STATE_DIR.parent / f"durability-{uuid.uuid4().hex[:6]}"
    stack = Stack(state_dir)
    stack.up()
    staged = stack.scones("stage", "--source", str(shared_data))
    assert staged.returncode == 0, staged.stderr[-3000:]
    yield stack
    stack.scones("down")
    subprocess.run(["rm", "-rf", str(state_dir)], check=False)


# ------------------------------ Inventory ------------------------------


def inventory(stack: Stack) -> dict:
    """Every kind of state a restart must keep, object by object (bodies and messages too)."""
    s3, sqs, sns = stack.client("s3"), stack.client("sqs"), stack.client("sns")
    lam, sfn, events = stack.client("lambda"), stack.client("stepfunctions"), stack.client("events")
    found: dict = {"s3": {}, "sqs": {}, "sns": {}, "lambda": {}, "states": {}, "events": {}}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for o in page.get("Contents", []):
            got = s3.get_object(Bucket=BUCKET, Key=o["Key"])
            # read before the next call: a body left unread stalls the server's send, which
            # hypercorn ends with a timeout (a truncated body, not a restart's fault)
            body = got["Body"].read()
            tags = s3.get_object_tagging(Bucket=BUCKET, Key=o["Key"])["TagSet"]
            found["s3"][o["Key"]] = {
                "body": body,
                "etag": got["ETag"],
                "type": got["ContentType"],
                "metadata": got["Metadata"],
                "tags": tags,
                "modified": got["LastModified"],
            }
    found["s3"]["_keys"] = {
        o["Key"]
        for p in s3.get_paginator("list_objects_v2").paginate(Bucket=config.BUCKET)
        for o in p.get("Contents", [])
    }
    for url in sqs.list_queues().get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        messages: set = set()
        for _ in range(30):  # peek: VisibilityTimeout 0 leaves each message where it was
            got = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=0,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages |= {
                (m["MessageId"], m["Body"], json.dumps(m.get("MessageAttributes"))) for m in got
            }
            if len(messages) >= int(attributes["ApproximateNumberOfMessages"]):
                break
        keep = ("QueueArn", "MessageRetentionPeriod", "Policy")
        found["sqs"][url] = {
            "attributes": {k: attributes.get(k) for k in keep},
            "messages": messages,
        }
    for topic in sns.list_topics()["Topics"]:
        arn = topic["TopicArn"]
        subs = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
        found["sns"][arn] = sorted(
            (s["SubscriptionArn"], s["Protocol"], s["Endpoint"]) for s in subs
        )
    for fn in lam.list_functions()["Functions"]:
        found["lambda"][fn["FunctionName"]] = {
            k: fn.get(k) for k in ("CodeSha256", "Handler", "Runtime", "Role", "Environment")
        }
    for machine in sfn.list_state_machines()["stateMachines"]:
        described = sfn.describe_state_machine(stateMachineArn=machine["stateMachineArn"])
        runs = {}
        for page in sfn.get_paginator("list_executions").paginate(
            stateMachineArn=machine["stateMachineArn"]
        ):
            for e in page["executions"]:
                history = sfn.get_execution_history(executionArn=e["executionArn"])["events"]
                runs[e["name"]] = (e["status"], [(h["id"], h["type"]) for h in history])
        found["states"][machine["name"]] = {"definition": described["definition"], "runs": runs}
    for rule in events.list_rules()["Rules"]:
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        found["events"][rule["Name"]] = (rule["EventPattern"], rule["State"], targets)
    return found


def make_state(stack: Stack) -> dict:
    """One of each kind of state beside what `scones up` and `stage` made; returns names used."""
    s3, sqs, sns = stack.client("s3"), stack.client("sqs"), stack.client("sns")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(
        Bucket=BUCKET,
        Key="small.json",
        Body=b'{"order": 1}',
        ContentType="application/json",
        Metadata={"driver": "d-17"},
        Tagging="kind=order",
    )
    s3.put_object(Bucket=BUCKET, Key="big.bin", Body=os.urandom(3 * 1024 * 1024 + 7))
    s3.put_object(Bucket=BUCKET, Key="overwritten.txt", Body=b"first")
    s3.put_object(Bucket=BUCKET, Key="overwritten.txt", Body=b"second")
    s3.put_object(Bucket=BUCKET, Key="deleted.txt", Body=b"gone")
    s3.delete_object(Bucket=BUCKET, Key="deleted.txt")
    review = sqs.get_queue_url(QueueName=f"{config.RESOURCE_PREFIX}-review")["QueueUrl"]
    for i in range(3):
        sqs.send_message(
            QueueUrl=review,
            MessageBody=json.dumps({"s3_key": f"incoming/{i}.png", "reason": "low confidence"}),
            MessageAttributes={"n": {"DataType": "Number", "StringValue": str(i)}},
        )
    extra = sqs.create_queue(QueueName="durability-extra")["QueueUrl"]
    extra_arn = sqs.get_queue_attributes(QueueUrl=extra, AttributeNames=["QueueArn"])
    topic = sns.create_topic(Name="durability-topic")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=extra_arn["Attributes"]["QueueArn"])
    # one finished execution of the workflow, with its history
    sfn = stack.client("stepfunctions")
    machine = next(
        m["stateMachineArn"]
        for m in sfn.list_state_machines()["stateMachines"]
        if m["name"] == f"{config.RESOURCE_PREFIX}-image-workflow"
    )
    key = next(
        o["Key"]
        for o in s3.list_objects_v2(Bucket=config.BUCKET, Prefix="datasets/")["Contents"]
        if o["Key"].endswith(".png")
    )
    arn = sfn.start_execution(
        stateMachineArn=machine,
        name=f"before-restart-{uuid.uuid4().hex[:6]}",
        input=json.dumps({"s3_bucket": config.BUCKET, "s3_key": key}),
    )["executionArn"]
    deadline = time.monotonic() + 120
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{arn} still running"
        time.sleep(0.5)
    return {"machine": machine, "topic": topic, "extra_queue": extra, "image_key": key}


def assert_kept(before: dict, after: dict) -> None:
    """Everything before is there after, unchanged; kind by kind, so a failure names the loss.

    The running stack may add (data capture objects, notifications still on their way), so
    the workflow bucket's keys, queue messages and executions are compared as "all kept".
    """
    for kind, named in before.items():
        for name, value in named.items():
            assert name in after[kind], f"{kind} {name} lost across the restart"
            got = after[kind][name]
            if kind == "sqs":
                assert got["attributes"] == value["attributes"], name
                assert value["messages"] <= got["messages"], f"messages lost from {name}"
            elif kind == "states":
                assert got["definition"] == value["definition"], name
                for run, seen in value["runs"].items():
                    assert got["runs"].get(run) == seen, f"execution {run} of {name} changed"
            elif name == "_keys":
                assert value <= got, f"objects lost: {sorted(value - got)[:5]}"
            else:
                assert got == value, f"{kind} {name} changed across the restart"


# ------------------------------ Tests ------------------------------


def test_sigkill_and_restart_keep_every_kind_of_state_and_the_stack_works_after(durable_stack):
    made = make_state(durable_stack)
    before = inventory(durable_stack)
    assert len(before["s3"]["_keys"]) >= 1200  # the staged dataset
    assert (
        "deleted.txt" not in before["s3"] and before["s3"]["overwritten.txt"]["body"] == b"second"
    )

    durable_stack.sigkill_emulator()
    durable_stack.up()
    after_kill = inventory(durable_stack)

    assert_kept(before, after_kill)

    # the restored pieces still work: a function, the S3 -> EventBridge -> Step Functions chain
    lam = durable_stack.client("lambda")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("echo.py", "def handler(event, context):\n    return event\n")
    lam.create_function(
        FunctionName="durability-echo",
        Runtime=config.LAMBDA_RUNTIME,
        Handler="echo.handler",
        Role=f"arn:aws:iam::{config.ACCOUNT_ID}:role/durability",
        Code={"ZipFile": archive.getvalue()},
    )
    lam.get_waiter("function_active_v2").wait(FunctionName="durability-echo")
    serialize = f"{config.RESOURCE_PREFIX}-serialize-image-data"
    answer = lam.invoke(
        FunctionName=serialize,
        Payload=json.dumps({"s3_bucket": config.BUCKET, "s3_key": made["image_key"]}),
    )
    assert "FunctionError" not in answer, answer["Payload"].read()
    s3, sfn = durable_stack.client("s3"), durable_stack.client("stepfunctions")
    image = s3.get_object(Bucket=config.BUCKET, Key=made["image_key"])["Body"].read()
    upload = f"{config.INCOMING_PREFIX}after-restart-{uuid.uuid4().hex[:6]}.png"
    s3.put_object(Bucket=config.BUCKET, Key=upload, Body=image)
    deadline = time.monotonic() + 90
    while True:
        runs = sfn.list_executions(stateMachineArn=made["machine"])["executions"]
        started = [
            r
            for r in runs
            if upload in sfn.describe_execution(executionArn=r["executionArn"])["input"]
        ]
        if started and started[0]["status"] != "RUNNING":
            break
        assert time.monotonic() < deadline, f"no execution ended for {upload}"
        time.sleep(1)
    assert started[0]["status"] in ("SUCCEEDED", "FAILED")
    ended = sfn.describe_execution(executionArn=started[0]["executionArn"])
    assert ended["status"] == "SUCCEEDED" or ended["error"] == "ThresholdConfidenceNotMet"

    # an orderly stop (SIGTERM) keeps it all too, what was added since included
    before_stop = inventory(durable_stack)
    down = durable_stack.scones("down")
    assert down.returncode == 0, down.stderr
    durable_stack.up()

    assert_kept(before_stop, inventory(durable_stack))
    assert "durability-echo" in before_stop["lambda"]


def test_executions_cut_short_by_a_sigkill_are_failed_named_and_rerun_by_up(durable_stack):
    sfn = durable_stack.client("stepfunctions")
    machine = next(
        m["stateMachineArn"]
        for m in sfn.list_state_machines()["stateMachines"]
        if m["name"] == f"{config.RESOURCE_PREFIX}-image-workflow"
    )
    # a Wait state keeps the execution running when the kill comes
    slow = sfn.create_state_machine(
        name=f"durability-slow-{uuid.uuid4().hex[:6]}",
        definition=json.dumps(
            {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 120, "End": True}}}
        ),
        roleArn=f"arn:aws:iam::{config.ACCOUNT_ID}:role/durability",
    )["stateMachineArn"]
    held = sfn.start_execution(stateMachineArn=slow, name="held")["executionArn"]
    # one started by an EventBridge rule: an internal StartExecution, which persistence must
    # hear of as it hears of a user's
    events = durable_stack.client("events")
    pattern = {"source": ["durability.test"]}
    events.put_rule(Name="durability-slow", EventPattern=json.dumps(pattern))
    role = f"arn:aws:iam::{config.ACCOUNT_ID}:role/durability"
    events.put_targets(Rule="durability-slow", Targets=[{"Id": "s", "Arn": slow, "RoleArn": role}])
    entry = {"Source": "durability.test", "DetailType": "t", "Detail": "{}"}
    put = events.put_events(Entries=[entry])
    by_rule = f"{slow.replace(':stateMachine:', ':execution:')}:{put['Entries'][0]['EventId']}"
    deadline = time.monotonic() + 30
    while len(sfn.list_executions(stateMachineArn=slow)["executions"]) < 2:
        assert time.monotonic() < deadline, "the rule started no execution"
        time.sleep(0.2)
    s3 = durable_stack.client("s3")
    key = next(
        o["Key"]
        for o in s3.list_objects_v2(Bucket=config.BUCKET, Prefix="datasets/")["Contents"]
        if o["Key"].endswith(".png")
    )
    # an upload whose event cannot reach the workflow: the rule is off while it lands
    rule = f"{config.RESOURCE_PREFIX}-incoming"
    events.disable_rule(Name=rule)
    orphan = f"{config.INCOMING_PREFIX}orphan-{uuid.uuid4().hex[:6]}.png"
    s3.put_object(
        Bucket=config.BUCKET,
        Key=orphan,
        Body=s3.get_object(Bucket=config.BUCKET, Key=key)["Body"].read(),
    )
    events.enable_rule(Name=rule)

    durable_stack.sigkill_emulator()
    durable_stack.up()  # loads the state, then reconciles

    described = sfn.describe_execution(executionArn=held)
    assert (described["status"], described["error"]) == ("FAILED", "EmulatorRestarted")
    history = sfn.get_execution_history(executionArn=held)["events"]
    assert history[-1]["type"] == "ExecutionFailed"
    assert sfn.describe_execution(executionArn=f"{held}-r1")["input"] == described["input"]
    started_by_rule = sfn.describe_execution(executionArn=by_rule)
    assert (started_by_rule["status"], started_by_rule["error"]) == ("FAILED", "EmulatorRestarted")
    # the orphaned upload got an execution of the image workflow
    inputs = [
        sfn.describe_execution(executionArn=r["executionArn"])["input"]
        for r in sfn.list_executions(stateMachineArn=machine)["executions"]
    ]
    assert any(orphan in text for text in inputs)


def test_queue_journals_keep_sends_forget_deletes_and_stay_small(durable_stack):
    sqs = durable_stack.client("sqs")
    url = sqs.create_queue(QueueName=f"durability-journal-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    journal = (
        durable_stack.state_dir
        / "emulator"
        / "state"
        / "sqs"
        / f"{hashlib.sha256(arn['QueueArn'].encode()).hexdigest()}.journal"
    )
    deleted: set[str] = set()
    for round_ in range(150):  # 1,500 sends and 1,500 deletes: 3,000 journal records
        batch = [{"Id": str(i), "MessageBody": f"gone {round_}-{i}"} for i in range(10)]
        assert not sqs.send_message_batch(QueueUrl=url, Entries=batch).get("Failed")
        for _ in range(20):
            got = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=120
            ).get("Messages", [])
            if got:
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in
                           enumerate(got)]  # fmt: skip
                assert not sqs.delete_message_batch(QueueUrl=url, Entries=entries).get("Failed")
                deleted |= {m["MessageId"] for m in got}
            if len(deleted) == 10 * (round_ + 1):
                break
        assert len(deleted) == 10 * (round_ + 1), "a sent message was not received"
    kept = {
        sqs.send_message(QueueUrl=url, MessageBody=f"kept {i}")["MessageId"]: f"kept {i}"
        for i in range(20)
    }
    size_before_kill = journal.stat().st_size

    durable_stack.sigkill_emulator()
    durable_stack.up()

    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert int(attributes["ApproximateNumberOfMessages"]) == 20
    after: dict[str, str] = {}
    for _ in range(10):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=120)
        after |= {m["MessageId"]: m["Body"] for m in got.get("Messages", [])}
        if len(after) >= 20:
            break
    assert after == kept  # every kept message, no deleted one back
    # loaded, the journal holds the 20 live messages: about 20 sends' worth
    per_send = journal.stat().st_size / 20
    # before: compacted as it went, so well under the 1,520 sends it would hold otherwise
    assert size_before_kill < 800 * per_send, (size_before_kill, per_send)


# ------------------------------ S3 objects in their journals ------------------------------


def state_root(stack: Stack) -> Path:
    return stack.state_dir / "emulator" / "state"


def body_files(stack: Stack, bucket: str) -> int:
    """Body files on disk for a bucket (temp files of a write in progress left out)."""
    folder = state_root(stack) / "s3" / "bodies" / bucket
    return sum(1 for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else 0


def bucket_contents(stack: Stack, bucket: str) -> dict:
    """Every version and delete marker of a bucket as a client sees them, bodies included."""
    s3 = stack.client("s3")
    versions, markers = {}, {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            got = s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
            versions[(v["Key"], v["VersionId"])] = (
                v["IsLatest"],
                v["ETag"],
                v["Size"],
                got["Body"].read(),
                got["Metadata"],
            )
        for m in page.get("DeleteMarkers", []):
            markers[(m["Key"], m["VersionId"])] = m["IsLatest"]
    return {"versions": versions, "markers": markers}


@pytest.fixture(scope="module")
def s3_restarted(durable_stack) -> dict:
    """Versions and a delete marker, an overwrite and deletes, 300 objects; then a SIGKILL and
    `up`. What a client saw before and after, and the body files on disk before and after."""
    s3 = durable_stack.client("s3")
    suffix = uuid.uuid4().hex[:6]
    versioned, plain = f"durability-versions-{suffix}", f"durability-plain-{suffix}"
    s3.create_bucket(Bucket=versioned)
    s3.put_object(Bucket=versioned, Key="from-before-versioning.txt", Body=b"null version")
    s3.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
    ids = [
        s3.put_object(Bucket=versioned, Key="doc.txt", Body=f"v{i}".encode())["VersionId"]
        for i in range(3)
    ]
    s3.delete_object(Bucket=versioned, Key="doc.txt", VersionId=ids[1])  # a middle one, for good
    s3.put_object(Bucket=versioned, Key="from-before-versioning.txt", Body=b"versioned")
    s3.put_object(Bucket=versioned, Key="marked.txt", Body=b"under a marker")
    s3.delete_object(Bucket=versioned, Key="marked.txt")  # a delete marker on top
    s3.create_bucket(Bucket=plain, ObjectOwnership="ObjectWriter")  # object ACLs allowed
    s3.put_object(Bucket=plain, Key="overwritten.txt", Body=b"first", Metadata={"n": "1"})
    s3.put_object(Bucket=plain, Key="overwritten.txt", Body=b"second", Metadata={"n": "2"})
    # an ACL changes the object in place (no key store set): it must be recorded again
    s3.put_object_acl(Bucket=plain, Key="overwritten.txt", ACL="public-read")
    s3.put_object(Bucket=plain, Key="deleted.txt", Body=b"gone")
    s3.delete_object(Bucket=plain, Key="deleted.txt")
    for i in range(300):
        s3.put_object(Bucket=plain, Key=f"many/{i:03d}", Body=f"object {i}".encode() * 10)
    gone = [{"Key": f"many/{i:03d}"} for i in range(50)]
    assert not s3.delete_objects(Bucket=plain, Delete={"Objects": gone}).get("Errors")
    before = {b: bucket_contents(durable_stack, b) for b in (versioned, plain)}
    bodies_before = {b: body_files(durable_stack, b) for b in (versioned, plain)}

    durable_stack.sigkill_emulator()
    durable_stack.up()

    return {
        "acl_after": s3.get_object_acl(Bucket=plain, Key="overwritten.txt")["Grants"],
        "versioned": versioned,
        "plain": plain,
        "doc_ids": ids,
        "before": before,
        "after": {b: bucket_contents(durable_stack, b) for b in (versioned, plain)},
        "bodies_before": bodies_before,
        "bodies_after": {b: body_files(durable_stack, b) for b in (versioned, plain)},
    }


def test_versioned_bucket_keeps_its_versions_and_delete_marker_across_sigkill(
    durable_stack, s3_restarted
):
    bucket = s3_restarted["versioned"]
    before, after = s3_restarted["before"][bucket], s3_restarted["after"][bucket]
    assert len(before["versions"]) == 5 and len(before["markers"]) == 1, before
    assert after == before  # every version, which one is latest, bodies, the marker
    s3 = durable_stack.client("s3")
    first, _deleted, last = s3_restarted["doc_ids"]
    assert s3.get_object(Bucket=bucket, Key="doc.txt")["VersionId"] == last
    assert s3.get_object(Bucket=bucket, Key="doc.txt", VersionId=first)["Body"].read() == b"v0"
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="marked.txt")
    # and it goes on as a versioned bucket: a new version on top, the old ones kept
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"after")
    versions = s3.list_object_versions(Bucket=bucket, Prefix="doc.txt")["Versions"]
    assert [v["IsLatest"] for v in versions].count(True) == 1 and len(versions) == 3


def test_overwrites_and_deletes_survive_sigkill_and_old_bodies_are_collected(
    durable_stack, s3_restarted
):
    bucket = s3_restarted["plain"]
    after = s3_restarted["after"][bucket]["versions"]
    assert after[("overwritten.txt", "null")][3:] == (b"second", {"n": "2"})
    assert ("deleted.txt", "null") not in after
    everyone = "http://acs.amazonaws.com/groups/global/AllUsers"
    assert any(g["Grantee"].get("URI") == everyone for g in s3_restarted["acl_after"])
    assert after == s3_restarted["before"][bucket]["versions"]
    # one body file per live object: the overwritten and deleted ones were removed as soon as
    # the record that dropped them was on disk (and nothing came back with the restart)
    assert s3_restarted["bodies_before"][bucket] == len(after)
    assert s3_restarted["bodies_after"][bucket] == len(after)
    versioned = s3_restarted["versioned"]
    assert s3_restarted["bodies_after"][versioned] == len(
        s3_restarted["after"][versioned]["versions"]
    )


def test_300_objects_and_a_batch_delete_survive_sigkill(s3_restarted):
    after = s3_restarted["after"][s3_restarted["plain"]]["versions"]
    many = {key: value[3] for (key, _), value in after.items() if key.startswith("many/")}
    assert many == {f"many/{i:03d}": f"object {i}".encode() * 10 for i in range(50, 300)}


def test_s3_snapshot_does_not_grow_with_objects_their_journal_does(durable_stack):
    """The cost of a save no longer grows with the bucket: objects are records in their
    bucket's journal, the snapshot written per S3 write holds the buckets only."""
    s3 = durable_stack.client("s3")
    bucket = f"durability-growth-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=bucket)
    snapshot = state_root(durable_stack) / "s3.pickle"
    journal = (
        state_root(durable_stack)
        / "s3"
        / "objects"
        / f"{hashlib.sha256(bucket.encode()).hexdigest()}.journal"
    )
    for i in range(20):
        s3.put_object(Bucket=bucket, Key=f"a/{i}", Body=b"x" * 100)
    snapshot_before, journal_before = snapshot.stat().st_size, journal.stat().st_size
    for i in range(200):
        s3.put_object(Bucket=bucket, Key=f"b/{i}", Body=b"x" * 100)

    assert snapshot.stat().st_size == snapshot_before  # buckets only: 220 objects or 20
    assert journal.stat().st_size > 5 * journal_before  # the 200 objects went here instead


def test_state_machine_changes_between_executions_survive_sigkill(durable_stack):
    """An execution's start or end saves only its own record (the store is not pickled again
    for it); a change to the state machines made between executions is still saved."""
    sfn = durable_stack.client("stepfunctions")

    def run(machine: str) -> str:
        arn = sfn.start_execution(stateMachineArn=machine, input='{"n": 1}')["executionArn"]
        deadline = time.monotonic() + 60
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
            assert time.monotonic() < deadline, f"{arn} still running"
            time.sleep(0.2)
        return arn

    def passing(result: str) -> str:
        return json.dumps(
            {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": result, "End": True}}}
        )

    machine = sfn.create_state_machine(
        name=f"durability-late-{uuid.uuid4().hex[:6]}",
        definition=passing("first"),
        roleArn=f"arn:aws:iam::{config.ACCOUNT_ID}:role/durability",
    )["stateMachineArn"]
    first = run(machine)  # saves with the store unchanged since the create
    sfn.update_state_machine(stateMachineArn=machine, definition=passing("second"))
    second = run(machine)
    sfn.tag_resource(resourceArn=machine, tags=[{"key": "kind", "value": "late"}])

    durable_stack.sigkill_emulator()
    durable_stack.up()

    assert json.loads(sfn.describe_state_machine(stateMachineArn=machine)["definition"]) == (
        json.loads(passing("second"))
    )
    assert sfn.list_tags_for_resource(resourceArn=machine)["tags"] == [
        {"key": "kind", "value": "late"}
    ]
    outputs = [sfn.describe_execution(executionArn=arn).get("output") for arn in (first, second)]
    assert outputs == ['"first"', '"second"']
    assert run(machine)  # and it still runs after the restart


def test_bench_faults_smoke_loses_no_order(durable_stack):
    done = durable_stack.scones("bench", "faults", "--smoke", "--json", timeout=900)

    assert done.returncode == 0, done.stderr[-3000:]
    results = {r["fault"]: r for r in json.loads(done.stdout)}
    assert set(results) == {"endpoint", "lambda", "emulator"}
    for fault, r in results.items():
        assert r["lost"] == 0 and r["failed_infra"] == 0, (fault, r)
        assert r["sent"] == r["succeeded"] + r["reviewed"] + r["failed_bad_input"], (fault, r)
        assert r["failed_bad_input"] >= 1  # bad input still fails, named
    assert results["emulator"]["objects_after"] >= results["emulator"]["objects_before"] > 0
    assert "SIGKILLed" in results["lambda"]["fault_detail"]


def test_reset_asks_then_wipes_the_saved_state(durable_stack):
    refused = durable_stack.scones("reset", stdin="n\n")
    assert refused.returncode != 0
    running = durable_stack.scones("reset", "--yes")
    assert running.returncode != 0 and "scones down" in running.stderr  # the stack is up

    assert durable_stack.scones("down").returncode == 0
    assert durable_stack.scones("reset", "--yes").returncode == 0
    durable_stack.up()

    s3 = durable_stack.client("s3")
    assert BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.list_objects_v2(Bucket=config.BUCKET).get("KeyCount", 0) == 0
