"""The local SageMaker endpoint as a running process: container routes, runtime API, bad input."""

from __future__ import annotations

import io
import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config
from PIL import Image

from scones.stack import free_port

pytestmark = pytest.mark.integration

MAX_PAYLOAD = 6 * 1024 * 1024
TINY_CLASSES = ["reddish", "bluish"]  # what conftest.build_tiny_model writes to model.json


def image_bytes(color: tuple[int, int, int], size=(32, 32), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


RED = image_bytes((230, 20, 20))
BLUE = image_bytes((20, 20, 230))


HTTP = httpx.Client(timeout=30)  # one client: building one costs ~30 ms of CPU


def invoke(url: str, body: bytes, content_type: str = "image/png", **headers) -> httpx.Response:
    return HTTP.post(
        url + "/invocations",
        content=body,
        headers={"Content-Type": content_type, **headers},
        timeout=30,
    )


def runtime(server_url: str, **env) -> object:
    """A boto3 sagemaker-runtime client bound to our server, exactly as a Lambda would build it."""
    return boto3.session.Session(region_name="us-east-1").client(
        "sagemaker-runtime",
        endpoint_url=server_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )


# ------------------------------ container contract ------------------------------


def test_tiny_model_lists_classes_out_of_alphabetical_order(tiny_classes):
    assert tiny_classes == TINY_CLASSES != sorted(TINY_CLASSES)


def test_ping_answers_200_once_loaded(tiny_server):
    assert HTTP.get(tiny_server.url + "/ping").status_code == 200


def test_invocations_returns_probabilities_in_model_json_class_order(tiny_server):
    for body, winner in ((RED, "reddish"), (BLUE, "bluish")):
        resp = invoke(tiny_server.url, body)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/json"
        probs = resp.json()
        assert isinstance(probs, list) and len(probs) == len(TINY_CLASSES)
        assert math.isclose(sum(probs), 1.0, abs_tol=1e-5)
        assert TINY_CLASSES[probs.index(max(probs))] == winner


def test_invocations_accepts_jpeg_and_x_image_of_any_size(tiny_server):
    big_jpeg = image_bytes((20, 20, 230), size=(1600, 1200), fmt="JPEG")
    for body, ctype in ((big_jpeg, "image/jpeg"), (RED, "application/x-image")):
        resp = invoke(tiny_server.url, body, ctype)
        assert resp.status_code == 200, resp.text
        assert math.isclose(sum(resp.json()), 1.0, abs_tol=1e-5)


def test_verbose_accept_adds_labels_like_the_builtin_algorithm(tiny_server):
    resp = invoke(tiny_server.url, BLUE, Accept="application/json;verbose")
    assert resp.status_code == 200
    body = resp.json()
    assert body["labels"] == TINY_CLASSES
    assert body["predicted_label"] == "bluish"
    assert len(body["prediction"]) == 2


def test_the_unknown_image_score_comes_as_custom_attributes_and_in_verbose(tiny_server):
    """ood_score travels beside the course's plain list: a header SageMaker hands to the caller
    as CustomAttributes, and a key of the verbose answer."""
    green = image_bytes((0, 255, 0))  # the tiny model's unknown kind
    plain = invoke(tiny_server.url, green)
    verbose = invoke(tiny_server.url, green, Accept="application/json;verbose").json()
    known = invoke(tiny_server.url, RED)

    assert isinstance(plain.json(), list)  # the body the course's Lambdas parse is unchanged
    assert plain.headers["x-amzn-sagemaker-custom-attributes"] == "ood_score=1.000000"
    assert verbose["ood_score"] == 1.0
    assert known.headers["x-amzn-sagemaker-custom-attributes"] == "ood_score=0.000000"
    resp = runtime(tiny_server.url).invoke_endpoint(
        EndpointName="scones-classifier", ContentType="image/png", Body=green
    )
    assert resp["CustomAttributes"] == "ood_score=1.000000"


def test_real_cifar_image_is_classified(tiny_server, shared_data):
    path = next((shared_data / "test").glob("*.png"))
    resp = invoke(tiny_server.url, path.read_bytes())
    assert resp.status_code == 200
    assert math.isclose(sum(resp.json()), 1.0, abs_tol=1e-5)


def test_concurrent_requests_each_get_their_own_answer(tiny_server):
    bodies = [RED if i % 2 else BLUE for i in range(64)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda b: invoke(tiny_server.url, b), bodies))
    for body, resp in zip(bodies, answers, strict=True):
        assert resp.status_code == 200
        probs = resp.json()
        expected = "reddish" if body is RED else "bluish"
        assert TINY_CLASSES[probs.index(max(probs))] == expected


# ------------------------------ bad input ------------------------------


def _truncated_png() -> bytes:
    whole = image_bytes((10, 200, 10), size=(64, 64))
    return whole[: len(whole) // 2]


def _decompression_bomb() -> bytes:
    # 10000 x 10000 = 100 MP of one colour: a few kB of PNG, 300 MB once decoded as RGB
    buf = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buf, "PNG")
    return buf.getvalue()


BAD_INPUTS = {
    "empty": (b"", "image/png", 400, "EmptyBody"),
    "not_an_image": (b"this is text, not a picture", "image/png", 400, "InvalidImage"),
    "truncated_png": (_truncated_png(), "image/png", 400, "InvalidImage"),
    "decompression_bomb": (_decompression_bomb(), "image/png", 413, "ImageTooLarge"),
    "over_6mb": (b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_PAYLOAD, "image/png", 413, "PayloadTooLarge"),
    "wrong_content_type": (RED, "application/json", 415, "UnsupportedContentType"),
    "no_content_type": (RED, "", 415, "UnsupportedContentType"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_a_4xx_json_error_and_the_server_keeps_serving(tiny_server, case):
    body, ctype, status, kind = BAD_INPUTS[case]
    resp = invoke(tiny_server.url, body, ctype)
    assert resp.status_code == status, resp.text
    error = resp.json()
    assert error["error"] == kind
    assert error["message"] and "\n" not in error["message"]
    assert HTTP.get(tiny_server.url + "/ping").status_code == 200
    assert invoke(tiny_server.url, RED).status_code == 200


def test_errors_and_batches_are_counted_in_metrics(tiny_server):
    invoke(tiny_server.url, b"not an image")
    invoke(tiny_server.url, RED)
    text = HTTP.get(tiny_server.url + "/metrics").text
    assert 'scones_model_errors_total{kind="InvalidImage"}' in text
    assert 'scones_model_requests_total{route="invocations",status="200"}' in text
    assert "scones_model_batch_size_bucket" in text
    assert "scones_model_request_seconds_bucket" in text
    assert "scones_capture_records_total" in text


def test_health_reports_model_classes_and_endpoint_names(tiny_server):
    info = HTTP.get(tiny_server.url + "/health").json()
    assert info["status"] == "ok"
    assert info["classes"] == TINY_CLASSES
    assert info["endpoints"] == ["scones-classifier", "their-endpoint", "other-name"]


# ------------------------------ SageMaker Runtime API via boto3 ------------------------------


def test_boto3_invoke_endpoint_returns_probabilities_and_headers(tiny_server):
    resp = runtime(tiny_server.url).invoke_endpoint(
        EndpointName="scones-classifier", ContentType="image/png", Body=RED
    )
    assert resp["ContentType"] == "application/json"
    assert resp["InvokedProductionVariant"] == "AllTraffic"
    probs = json.loads(resp["Body"].read())
    assert TINY_CLASSES[probs.index(max(probs))] == "reddish"
    assert math.isclose(sum(probs), 1.0, abs_tol=1e-5)


def test_boto3_reaches_the_model_under_an_alias_name(tiny_server):
    resp = runtime(tiny_server.url).invoke_endpoint(
        EndpointName="their-endpoint", ContentType="image/png", Body=BLUE
    )
    probs = json.loads(resp["Body"].read())
    assert TINY_CLASSES[probs.index(max(probs))] == "bluish"


def test_boto3_finds_the_server_through_aws_endpoint_url_sagemaker_runtime(
    tiny_server, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", tiny_server.url)
    client = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    ).client("sagemaker-runtime")
    resp = client.invoke_endpoint(
        EndpointName="scones-classifier", ContentType="image/png", Body=RED
    )
    assert len(json.loads(resp["Body"].read())) == 2


def test_boto3_unknown_endpoint_is_a_validation_error_like_aws(tiny_server):
    client = runtime(tiny_server.url)
    with pytest.raises(client.exceptions.ValidationError) as info:
        client.invoke_endpoint(EndpointName="nope", ContentType="image/png", Body=RED)
    err = info.value.response
    assert err["Error"]["Code"] == "ValidationError"
    assert err["Error"]["Message"] == "Endpoint nope of account 000000000000 not found."
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize(
    ("key_id", "account"),
    [("123456789012", "123456789012"),  # scones' own form: the key id is the account
     ("LSIARZPUZDIKLCKNOCPP", "123456789012"),  # what LocalStack gives a Lambda of that account
     ("ASIAY34FZKBOKMUTVV7A", "609629065308"),  # an AWS-format key (LocalStack decodes the same)
     ("test", "000000000000")],  # nothing to read: the server's own account
)  # fmt: skip
def test_unknown_endpoint_names_the_callers_account(tiny_server, key_id, account):
    """AWS names the caller's account; the access key id carries it (LocalStack's keys too)."""
    client = boto3.session.Session(region_name="us-east-1").client(
        "sagemaker-runtime", endpoint_url=tiny_server.url, aws_access_key_id=key_id,
        aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip
    with pytest.raises(client.exceptions.ValidationError) as info:
        client.invoke_endpoint(EndpointName="nope", ContentType="image/png", Body=RED)
    message = info.value.response["Error"]["Message"]
    assert message == f"Endpoint nope of account {account} not found."


def test_boto3_bad_image_is_a_model_error_with_the_original_status(tiny_server):
    client = runtime(tiny_server.url)
    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(EndpointName="scones-classifier", ContentType="image/png", Body=b"x")
    err = info.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err["OriginalStatusCode"] == 400
    assert json.loads(err["OriginalMessage"])["error"] == "InvalidImage"
    assert "Received client error (400) from primary" in err["Error"]["Message"]
    assert err["LogStreamArn"].startswith("arn:aws:logs:")


def test_boto3_unsupported_content_type_is_a_model_error_415(tiny_server):
    client = runtime(tiny_server.url)
    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(
            EndpointName="scones-classifier", ContentType="text/csv", Body=b"1,2,3"
        )
    assert info.value.response["OriginalStatusCode"] == 415


def test_boto3_payload_over_6mb_is_a_validation_error(tiny_server):
    client = runtime(tiny_server.url)
    with pytest.raises(client.exceptions.ValidationError):
        client.invoke_endpoint(
            EndpointName="scones-classifier",
            ContentType="image/png",
            Body=b"\x89PNG" + b"\0" * MAX_PAYLOAD,
        )
    assert HTTP.get(tiny_server.url + "/ping").status_code == 200


# ------------------------------ start-up ------------------------------


def test_missing_model_dir_fails_with_one_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "local_model.serve",
            "--model",
            str(tmp_path / "none"),
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 1
    assert "no model.onnx in" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_model_json_must_match_the_onnx_outputs(tmp_path, make_tiny_model):
    from local_model.serve import ModelInvalid, OnnxModel

    model_dir = make_tiny_model(tmp_path / "m", classes=["a", "b", "c"])
    with pytest.raises(ModelInvalid, match="lists 3 classes"):
        OnnxModel.load(model_dir)


# ------------------------------ CLI: scones serve, scones bench endpoint ------------------------


def test_scones_serve_command_serves_the_model(tiny_model_dir, tmp_path):
    import subprocess
    import sys
    import time

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "scones",
        "serve",
        "--model",
        str(tiny_model_dir),
        "--port",
        str(port),
        "--no-capture",
    ]
    log = tmp_path / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2]
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        resp = invoke(f"http://127.0.0.1:{port}", BLUE)
        assert resp.status_code == 200, log.read_text()
        assert len(resp.json()) == 2
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.slow
def test_bench_endpoint_smoke_prints_the_figures_as_json(make_tiny_model, tmp_path):
    import subprocess
    import sys

    model_dir = make_tiny_model(tmp_path / "bench-model", with_torch=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scones",
            "bench",
            "endpoint",
            "--model",
            str(model_dir),
            "--smoke",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    for key in (
        "ours_rps_c16",
        "baseline_rps_c16",
        "ratio_c16",
        "ours_p50_ms_c1",
        "ours_p99_ms_c16",
    ):
        assert isinstance(figures[key], (int, float)) and figures[key] > 0, key
    assert figures["smoke"] is True


# ------------------------------ micro-batching (in process, real ONNX model) ----------------


def _batch_sizes(metrics) -> list[float]:
    """(count, sum) of the batch-size histogram."""
    families = {m.name: m for m in metrics.registry.collect()}
    samples = {s.name: s.value for s in families["scones_model_batch_size"].samples}
    return [samples["scones_model_batch_size_count"], samples["scones_model_batch_size_sum"]]


def test_requests_queued_together_share_one_onnx_run(tiny_model_dir):
    import asyncio

    import numpy as np

    from local_model.serve import MicroBatcher, OnnxModel, ServerMetrics

    async def scenario():
        model = OnnxModel.load(tiny_model_dir)
        metrics = ServerMetrics(None)
        batcher = MicroBatcher(model, max_batch=8, max_wait_s=0.002, metrics=metrics)
        batcher.start()
        red = np.zeros((3, 32, 32), np.float32)
        red[0] = 2.0
        blue = np.zeros((3, 32, 32), np.float32)
        blue[2] = 2.0
        futures = [batcher.submit(red if i % 2 else blue) for i in range(20)]
        rows = await asyncio.gather(*futures)
        await batcher.stop()
        return rows, _batch_sizes(metrics)

    rows, (runs, images) = asyncio.run(scenario())
    assert images == 20
    assert runs == 3  # 8 + 8 + 4: bounded by max_batch
    assert [int(np.argmax(r.probs)) for r in rows] == [1 if i % 2 == 0 else 0 for i in range(20)]
    assert {r.ood_score for r in rows} == {0.0}  # red and blue: both known kinds


def test_a_lone_request_does_not_wait_for_a_batch_to_fill(tiny_model_dir):
    import asyncio
    import time

    import numpy as np

    from local_model.serve import MicroBatcher, OnnxModel, ServerMetrics

    async def scenario():
        model = OnnxModel.load(tiny_model_dir)
        batcher = MicroBatcher(model, max_batch=32, max_wait_s=30.0, metrics=ServerMetrics(None))
        batcher.start()
        began = time.monotonic()
        await asyncio.wait_for(batcher.submit(np.zeros((3, 32, 32), np.float32)), 10)
        elapsed = time.monotonic() - began
        await batcher.stop()
        return elapsed

    assert asyncio.run(scenario()) < 10  # nobody else is being decoded: no 30 s wait
