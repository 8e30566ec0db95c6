"""Data capture in SageMaker Model Monitor's format: records, S3 layout, retries, and shutdown."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from PIL import Image

from local_model.capture import CaptureConfig, CaptureConfigError, CaptureWriter, capture_record

TIME_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
KEY_FORMAT = (  # <prefix>/<endpoint>/<variant>/YYYY/MM/DD/HH/<MM-SS-mmm>-<uuid>.jsonl
    r"{prefix}/{endpoint}/AllTraffic/\d{{4}}/\d\d/\d\d/\d\d/\d\d-\d\d-\d{{3}}-[0-9a-f-]{{36}}\.jsonl"
)
WAIT_SECONDS = 30.0  # bound on waiting for the flusher to write to the emulator


def png(color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buf, "PNG")
    return buf.getvalue()


def read_records(s3, bucket: str, prefix: str) -> dict[str, list[dict]]:
    """Every capture record under a prefix, by object key."""
    out: dict[str, list[dict]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
            out[obj["Key"]] = [json.loads(line) for line in body.splitlines() if line]
    return out


def wait_for_records(s3, bucket: str, prefix: str, count: int) -> dict[str, list[dict]]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = read_records(s3, bucket, prefix)
        if sum(map(len, found.values())) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def all_records(found: dict[str, list[dict]]) -> list[dict]:
    return [r for records in found.values() for r in records]


# ------------------------------ record format ------------------------------


def _cfg(tmp_path, **kw) -> CaptureConfig:
    return CaptureConfig(destination="s3://b/p", spool_dir=tmp_path, **kw)


def test_record_has_model_monitor_fields_and_encodings(tmp_path):
    image = png()
    when = datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=UTC)
    record = capture_record(
        _cfg(tmp_path),
        input_data=image,
        input_content_type="image/png",
        output_data=b"[0.91, 0.09]",
        output_content_type="application/json",
        when=when,
        inference_id="abc-1",
        event_id="e-1",
    )
    assert record == {
        "captureData": {
            "endpointInput": {
                "observedContentType": "image/png",
                "mode": "INPUT",
                "data": base64.b64encode(image).decode(),
                "encoding": "BASE64",
            },
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": "[0.91, 0.09]",
                "encoding": "JSON",
            },
        },
        "eventMetadata": {
            "eventId": "e-1",
            "inferenceId": "abc-1",
            "inferenceTime": "2024-05-01T12:34:56Z",
        },
        "eventVersion": "0",
    }


def test_record_without_inference_id_has_no_inference_id_key(tmp_path):
    record = capture_record(
        _cfg(tmp_path),
        input_data=b"a,b",
        input_content_type="text/csv",
        output_data=b"1",
        output_content_type="application/json",
        when=datetime.now(UTC),
    )
    assert "inferenceId" not in record["eventMetadata"]
    assert uuid.UUID(record["eventMetadata"]["eventId"])
    assert TIME_FORMAT.match(record["eventMetadata"]["inferenceTime"])
    assert record["captureData"]["endpointInput"]["encoding"] == "CSV"


@pytest.mark.parametrize(
    ("mode", "keys"),
    [
        ("Input", {"endpointInput"}),
        ("Output", {"endpointOutput"}),
        ("InputAndOutput", {"endpointInput", "endpointOutput"}),
    ],
)
def test_capture_mode_selects_what_is_captured(tmp_path, mode, keys):
    record = capture_record(
        _cfg(tmp_path, mode=mode),
        input_data=b"x",
        input_content_type="image/png",
        output_data=b"[1.0]",
        output_content_type="application/json",
        when=datetime.now(UTC),
    )
    assert set(record["captureData"]) == keys


def test_json_content_types_are_configurable(tmp_path):
    cfg = _cfg(tmp_path, json_content_types=())
    record = capture_record(
        cfg,
        input_data=b"x",
        input_content_type="image/png",
        output_data=b"[1.0]",
        output_content_type="application/json",
        when=datetime.now(UTC),
    )
    out = record["captureData"]["endpointOutput"]
    assert out["encoding"] == "BASE64" and base64.b64decode(out["data"]) == b"[1.0]"


def test_object_key_follows_model_monitor_layout(tmp_path):
    when = datetime(2024, 5, 1, 7, 8, 9, 12000, tzinfo=UTC)
    key = CaptureConfig("s3://bucket/data_capture/", spool_dir=tmp_path).object_key("ep", when)
    assert re.fullmatch(
        r"data_capture/ep/AllTraffic/2024/05/01/07/08-09-012-[0-9a-f-]{36}\.jsonl", key
    )
    bare = CaptureConfig("s3://bucket", spool_dir=tmp_path).object_key("ep", when)
    assert bare.startswith("ep/AllTraffic/2024/05/01/07/")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"destination": "bucket/prefix"},
        {"destination": "s3://b", "mode": "Both"},
        {"destination": "s3://b", "sampling_percentage": 120},
    ],
)
def test_invalid_capture_settings_are_named_errors(tmp_path, kwargs):
    with pytest.raises(CaptureConfigError):
        CaptureConfig(spool_dir=tmp_path, **kwargs)


def test_sampling_percentage_captures_that_share(tmp_path):
    assert not any(
        CaptureWriter(_cfg(tmp_path, sampling_percentage=0)).sampled() for _ in range(500)
    )
    assert all(CaptureWriter(_cfg(tmp_path, sampling_percentage=100)).sampled() for _ in range(500))
    half = sum(CaptureWriter(_cfg(tmp_path, sampling_percentage=50)).sampled() for _ in range(2000))
    assert 700 < half < 1300  # binomial(2000, 0.5): outside this is ~1e-40 likely


# ------------------------------ writer against the emulator's S3 ------------------------------


def _s3_factory(emulator):
    def make():
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=emulator.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    return make


@pytest.mark.integration
def test_failed_s3_writes_are_spooled_counted_and_retried(tmp_path, emulator, aws_client):
    bucket = f"capture-retry-{uuid.uuid4().hex[:8]}"  # does not exist yet: every write fails
    cfg = CaptureConfig(f"s3://{bucket}/dc", spool_dir=tmp_path, flush_seconds=0.2)
    writer = CaptureWriter(cfg, _s3_factory(emulator))
    writer.start()
    for i in range(5):
        writer.add(
            "ep",
            input_data=png(),
            input_content_type="image/png",
            output_data=b"[0.5, 0.5]",
            output_content_type="application/json",
            inference_id=f"r{i}",
        )
    deadline = time.monotonic() + WAIT_SECONDS
    while writer.stats.upload_failures == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert writer.stats.upload_failures >= 1
    assert writer.stats.spooled_files >= 1
    assert list((tmp_path / bucket).rglob("*.jsonl"))  # kept on local disk
    aws_client("s3").create_bucket(Bucket=bucket)  # S3 recovers: the retry delivers
    found = wait_for_records(aws_client("s3"), bucket, "dc/ep/AllTraffic/", 5)
    writer.close(timeout=5)
    ids = sorted(r["eventMetadata"]["inferenceId"] for r in all_records(found))
    assert ids == [f"r{i}" for i in range(5)]
    assert not list((tmp_path / bucket).rglob("*.jsonl"))


@pytest.mark.integration
def test_spooled_files_from_a_previous_run_are_uploaded_at_start(tmp_path, emulator, aws_client):
    bucket = f"capture-restart-{uuid.uuid4().hex[:8]}"
    cfg = CaptureConfig(f"s3://{bucket}/dc", spool_dir=tmp_path, flush_seconds=60)
    first = CaptureWriter(cfg, _s3_factory(emulator))
    first.start()
    for i in range(3):
        first.add(
            "ep",
            input_data=b"x",
            input_content_type="image/png",
            output_data=b"[1.0]",
            output_content_type="application/json",
            inference_id=f"old{i}",
        )
    first.close(timeout=0.5)  # bucket missing: the records stay in the spool
    assert len(list((tmp_path / bucket).rglob("*.jsonl"))) == 1
    aws_client("s3").create_bucket(Bucket=bucket)
    second = CaptureWriter(cfg, _s3_factory(emulator))
    second.start()
    assert (second.stats.records_recovered, second.stats.records_pending) == (3, 3)
    for i in range(2):  # this run's records wait in memory (flush_seconds=60)
        second.add(
            "ep",
            input_data=b"x",
            input_content_type="image/png",
            output_data=b"[1.0]",
            output_content_type="application/json",
            inference_id=f"new{i}",
        )
    deadline = time.monotonic() + WAIT_SECONDS
    while second.stats.records_uploaded < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    # More records uploaded than this run took, no file spooled, yet two are not in S3:
    # only records_pending says so (`scones demo` waits on it before reading the capture).
    assert second.stats.records_uploaded == 3 > second.stats.records == 2
    assert second.stats.spooled_files == 0
    assert second.stats.records_pending == 2
    second.close(timeout=5)
    assert second.stats.records_pending == 0
    found = read_records(aws_client("s3"), bucket, "dc/")
    assert sorted(r["eventMetadata"]["inferenceId"] for r in all_records(found)) == [
        "new0",
        "new1",
        "old0",
        "old1",
        "old2",
    ]


# ------------------------------ the running server ------------------------------


@pytest.mark.integration
def test_server_writes_capture_files_in_model_monitor_layout(
    tiny_server, capture_bucket, aws_client
):
    image = png((20, 20, 220))
    ids = [f"layout-{uuid.uuid4()}" for _ in range(3)]
    answers = {}
    for inference_id in ids:
        resp = httpx.post(
            tiny_server.url + "/invocations",
            content=image,
            headers={"Content-Type": "image/png", "X-Amzn-SageMaker-Inference-Id": inference_id},
        )
        assert resp.status_code == 200
        answers[inference_id] = resp.content.decode()
    prefix = "shared-server/scones-classifier/AllTraffic/"
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = read_records(aws_client("s3"), capture_bucket, prefix)
        mine = {
            r["eventMetadata"].get("inferenceId"): (key, r)
            for key, records in found.items()
            for r in records
        }
        if all(i in mine for i in ids) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    for inference_id in ids:
        key, record = mine[inference_id]
        assert re.fullmatch(
            KEY_FORMAT.format(prefix="shared-server", endpoint="scones-classifier"), key
        )
        assert set(record) == {"captureData", "eventMetadata", "eventVersion"}
        assert record["eventVersion"] == "0"
        inp, out = record["captureData"]["endpointInput"], record["captureData"]["endpointOutput"]
        assert set(inp) == set(out) == {"observedContentType", "mode", "data", "encoding"}
        assert (inp["mode"], inp["encoding"], inp["observedContentType"]) == (
            "INPUT",
            "BASE64",
            "image/png",
        )
        assert base64.b64decode(inp["data"]) == image
        assert (out["mode"], out["encoding"], out["observedContentType"]) == (
            "OUTPUT",
            "JSON",
            "application/json",
        )
        assert out["data"] == answers[inference_id]  # exactly what the caller received
        assert set(record["eventMetadata"]) == {"eventId", "inferenceId", "inferenceTime"}
        assert TIME_FORMAT.match(record["eventMetadata"]["inferenceTime"])


@pytest.mark.integration
def test_runtime_api_captures_under_the_invoked_endpoint_name(
    tiny_server, capture_bucket, aws_client
):
    import boto3

    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=tiny_server.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    inference_id = f"alias-{uuid.uuid4()}"
    client.invoke_endpoint(
        EndpointName="their-endpoint",
        ContentType="image/png",
        Body=png(),
        InferenceId=inference_id,
    )
    prefix = "shared-server/their-endpoint/AllTraffic/"
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        records = all_records(read_records(aws_client("s3"), capture_bucket, prefix))
        if any(r["eventMetadata"].get("inferenceId") == inference_id for r in records):
            break
        time.sleep(0.25)
    else:
        pytest.fail(f"no capture record for {inference_id} under {prefix}")


@pytest.mark.integration
def test_failing_s3_is_reported_in_metrics_and_the_log(
    launch_server, tiny_model_dir, tmp_path, emulator
):
    bucket = f"missing-{uuid.uuid4().hex[:8]}"
    server = launch_server(
        tiny_model_dir,
        tmp_path / "server.log",
        ["--capture", "--capture-destination", f"s3://{bucket}/dc"],
        {
            "SCONES_CAPTURE_SPOOL_DIR": str(tmp_path / "spool"),
            "SCONES_CAPTURE_FLUSH_SECONDS": "0.2",
            "AWS_ENDPOINT_URL": emulator.url,
        },
    )
    try:
        resp = httpx.post(
            server.url + "/invocations", content=png(), headers={"Content-Type": "image/png"}
        )
        assert resp.status_code == 200  # capture trouble never fails the invocation
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            capture = httpx.get(server.url + "/health").json()["capture"]
            if capture["upload_failures"] >= 1:
                break
            time.sleep(0.2)
        assert capture["upload_failures"] >= 1 and capture["spooled_files"] >= 1
        metrics = httpx.get(server.url + "/metrics").text
        assert re.search(r"^scones_capture_upload_failures_total [1-9]", metrics, re.M)
        assert re.search(r"^scones_capture_spooled_files [1-9]", metrics, re.M)
        assert list((tmp_path / "spool" / bucket).rglob("*.jsonl"))
    finally:
        server.stop(timeout=60)
    log = server.log_text()
    assert f"writing s3://{bucket}/dc/" in log and "failed" in log
    assert "kept in" in log  # the shutdown message says where the records wait
    assert list((tmp_path / "spool" / bucket).rglob("*.jsonl"))  # still on disk, not dropped


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_during_a_request_stream_loses_no_capture_record(
    launch_server, tiny_model_dir, tmp_path, emulator, capture_bucket, aws_client
):
    prefix = f"sigterm-{uuid.uuid4().hex[:8]}"
    server = launch_server(
        tiny_model_dir,
        tmp_path / "server.log",
        ["--capture", "--capture-destination", f"s3://{capture_bucket}/{prefix}"],
        {  # nothing is flushed by time or size: every record relies on the shutdown flush
            "SCONES_CAPTURE_SPOOL_DIR": str(tmp_path / "spool"),
            "SCONES_CAPTURE_FLUSH_SECONDS": "3600",
            "SCONES_CAPTURE_FLUSH_BYTES": str(1 << 30),
            "AWS_ENDPOINT_URL": emulator.url,
        },
    )
    image = png()
    ok = []
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(timeout=10) as client:
            for _ in range(5000):  # bounded; the SIGTERM ends it much sooner
                if stop.is_set():
                    return
                try:
                    resp = client.post(
                        server.url + "/invocations",
                        content=image,
                        headers={"Content-Type": "image/png"},
                    )
                except httpx.HTTPError:
                    continue  # refused or reset after SIGTERM: not answered, not counted
                if resp.status_code == 200:
                    ok.append(1)

    threads = [threading.Thread(target=stream) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + WAIT_SECONDS
    while len(ok) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    code = server.stop(timeout=60)  # SIGTERM while the stream is running
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(30)
    # uvicorn re-raises SIGTERM after its graceful shutdown, so the exit status is -15
    assert code in (0, -15), server.log_text()[-2000:]
    assert "Application shutdown complete" in server.log_text()
    assert len(ok) >= 200
    records = all_records(read_records(aws_client("s3"), capture_bucket, prefix + "/"))
    assert len(records) == len(ok)
    assert not list((tmp_path / "spool").rglob("*.jsonl"))
