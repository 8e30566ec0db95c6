"""classify_image against a running model server (tiny red-vs-blue model), errors by name."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scones.stack import free_port

pytestmark = pytest.mark.integration

COURSE_ENDPOINT = "image-classification-2021-11-20-23-52-41-234"  # a name a student's code holds


@pytest.fixture
def classify_for(load_lambda, monkeypatch):
    """``classify_for(url, endpoint)``: the module, configured as deploy would configure it."""

    def make(url: str, endpoint: str = "scones-classifier"):
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
        monkeypatch.setenv("ENDPOINT_NAME", endpoint)
        monkeypatch.setenv("CLASS_NAMES", "bicycle,motorcycle")
        return load_lambda("classify_image")

    return make


def _with_image(event: dict, data: bytes) -> dict:
    event["body"]["image_data"] = base64.b64encode(data).decode()
    return event


def test_classify_adds_inferences_label_and_confidence(classify_for, tiny_endpoint, event, context):
    classify = classify_for(tiny_endpoint.url)
    request = event("classify_image")  # a red image: the tiny model's first class

    result = classify.handler(request, context)

    body = result["body"]
    assert result["statusCode"] == 200
    assert len(body["inferences"]) == 2 and all(isinstance(p, float) for p in body["inferences"])
    assert sum(body["inferences"]) == pytest.approx(1.0, abs=1e-5)
    assert body["label"] == "bicycle"
    assert body["confidence"] == max(body["inferences"])
    assert body["image_data"] == request["body"]["image_data"]  # the course's shape is kept
    assert body["s3_key"] == request["body"]["s3_key"]


def test_classify_labels_come_from_the_class_order(
    classify_for, tiny_endpoint, event, png, context
):
    classify = classify_for(tiny_endpoint.url)

    body = classify.handler(_with_image(event("classify_image"), png((20, 20, 220))), context)

    assert body["body"]["label"] == "motorcycle"  # blue scores the second class


def test_the_model_servers_unknown_score_reaches_the_filter_as_not_a_two_wheeler(
    classify_for, load_lambda, tiny_endpoint, event, png, context
):
    """The server sends ood_score as CustomAttributes (the body stays the course's plain list):
    classify adds it to the body, and filter_inferences names the review reason from it."""
    classify = classify_for(tiny_endpoint.url)
    known = classify.handler(event("classify_image"), context)["body"]  # red: a known class
    unknown = classify.handler(_with_image(event("classify_image"), png((0, 255, 0))), context)

    assert known["ood_score"] == pytest.approx(0.0)
    assert unknown["body"]["ood_score"] == pytest.approx(1.0)  # green: neither red nor blue
    assert unknown["body"]["confidence"] < 0.93
    filter_module = load_lambda("filter_inferences")
    with pytest.raises(Exception) as err:
        filter_module.handler(unknown, context)
    assert type(err.value).__name__ == "NotATwoWheeler"


def test_classify_reads_a_body_passed_as_json_text(classify_for, tiny_endpoint, event, context):
    classify = classify_for(tiny_endpoint.url)
    request = event("classify_image")
    request["body"] = json.dumps(request["body"])

    assert classify.handler(request, context)["body"]["label"] == "bicycle"


def test_a_course_endpoint_name_reaches_our_model_through_an_alias(
    classify_for, tiny_endpoint, event, context
):
    """The server maps SCONES_ENDPOINT_ALIASES: a student's endpoint name needs no code edit."""
    classify = classify_for(tiny_endpoint.url, COURSE_ENDPOINT)

    assert classify.handler(event("classify_image"), context)["body"]["label"] == "bicycle"


def test_classify_unknown_endpoint_raises_endpoint_not_found(
    classify_for, tiny_endpoint, event, context
):
    classify = classify_for(tiny_endpoint.url, "no-such-endpoint")

    with pytest.raises(Exception) as err:
        classify.handler(event("classify_image"), context)

    assert type(err.value).__name__ == "EndpointNotFound"
    assert "SCONES_ENDPOINT_ALIASES" in str(err.value)


def test_classify_an_image_the_model_refuses_raises_image_rejected(
    classify_for, tiny_endpoint, event, context
):
    classify = classify_for(tiny_endpoint.url)
    request = _with_image(event("classify_image"), b"\x89PNG\r\n\x1a\n but truncated")

    with pytest.raises(Exception) as err:
        classify.handler(request, context)

    assert type(err.value).__name__ == "ImageRejected"


def test_classify_refused_connection_raises_endpoint_unavailable(classify_for, event, context):
    classify = classify_for(f"http://127.0.0.1:{free_port()}")

    with pytest.raises(Exception) as err:
        classify.handler(event("classify_image"), context)

    assert type(err.value).__name__ == "EndpointUnavailable"


class _Refusing(BaseHTTPRequestHandler):
    """Answers every request like a busy SageMaker endpoint (status and error type per test)."""

    status, code = 503, "ServiceUnavailable"

    def do_POST(self) -> None:  # noqa: N802 -- http.server's name
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps({"message": f"{self.code} (stand-in)"}).encode()
        self.send_response(self.status)
        self.send_header("x-amzn-ErrorType", self.code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize(
    "status,code",
    [
        (400, "ThrottlingException"),
        (429, "ModelNotReadyException"),
        (503, "ServiceUnavailable"),
        (500, "InternalFailure"),
    ],
)
def test_classify_throttled_or_5xx_raises_endpoint_unavailable(
    classify_for, event, context, status, code
):
    """SageMaker's transient answers, which the model server never gives: a stand-in sends them."""
    handler = type("Handler", (_Refusing,), {"status": status, "code": code})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        classify = classify_for(f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(Exception) as err:
            classify.handler(event("classify_image"), context)
    finally:
        server.shutdown()
        server.server_close()

    assert type(err.value).__name__ == "EndpointUnavailable"
    assert code in str(err.value)


@pytest.mark.parametrize(
    "bad", [{}, {"body": {"image_data": ""}}, {"body": {"image_data": "not base64!"}}]
)
def test_classify_refuses_an_event_without_image_data(classify_for, bad, context):
    classify = classify_for("http://127.0.0.1:9")

    with pytest.raises(Exception) as err:
        classify.handler(bad, context)

    assert type(err.value).__name__ == "InvalidEvent"
