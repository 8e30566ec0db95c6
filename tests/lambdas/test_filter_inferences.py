"""filter_inferences: confident results get a loading bay, the rest raise for review."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def filter_module(load_lambda, monkeypatch):
    monkeypatch.delenv("THRESHOLD", raising=False)
    monkeypatch.setenv("CLASS_NAMES", "bicycle,motorcycle")
    monkeypatch.setenv("LOADING_BAYS", json.dumps({"bicycle": "bay-1", "motorcycle": "bay-2"}))
    return load_lambda("filter_inferences")


def test_filter_passes_a_confident_result_with_its_loading_bay(filter_module, event, context):
    request = event("filter_inferences")

    result = filter_module.handler(request, context)

    assert result["statusCode"] == 200
    body = result["body"]
    assert body["label"] == "bicycle"
    assert body["confidence"] == max(request["body"]["inferences"])
    assert body["loading_bay"] == "bay-1"
    assert {k: body[k] for k in request["body"]} == request["body"]  # the course's keys kept


def test_filter_raises_below_threshold(filter_module, event, context):
    with pytest.raises(Exception) as err:
        filter_module.handler(event("filter_inferences_low_confidence"), context)

    # The class name is the errorType the state machine's Catch matches.
    assert type(err.value).__name__ == "ThresholdConfidenceNotMet"
    assert "0.93" in str(err.value) and "bike_s_000041.png" in str(err.value)


def test_filter_reads_the_course_body_shape(filter_module, event, context):
    """The course's classify Lambda passes the body as JSON text, inferences as text too."""
    body = filter_module.handler(event("filter_inferences_course"), context)["body"]

    assert body["inferences"] == [0.02, 0.98]
    assert body["label"] == "motorcycle"  # from CLASS_NAMES: that body carries no label
    assert body["loading_bay"] == "bay-2"


def test_filter_threshold_comes_from_the_environment(load_lambda, monkeypatch, event, context):
    monkeypatch.setenv("THRESHOLD", "0.5")
    filter_module = load_lambda("filter_inferences")

    body = filter_module.handler(event("filter_inferences_low_confidence"), context)["body"]

    assert body["confidence"] == pytest.approx(0.61)


def test_filter_gives_an_unmapped_label_the_default_bay(load_lambda, monkeypatch, context):
    monkeypatch.setenv("LOADING_BAYS", json.dumps({"bicycle": "bay-1"}))
    monkeypatch.setenv("CLASS_NAMES", "bicycle,motorcycle")
    filter_module = load_lambda("filter_inferences")

    body = filter_module.handler({"body": {"inferences": [0.01, 0.99]}}, context)["body"]

    assert (body["label"], body["loading_bay"]) == ("motorcycle", "unassigned")


@pytest.mark.parametrize(
    "bad", [{}, {"body": {"inferences": []}}, {"body": "not json"}, {"body": {"inferences": ["x"]}}]
)
def test_filter_refuses_an_event_without_inferences(filter_module, bad, context):
    with pytest.raises(Exception) as err:
        filter_module.handler(bad, context)

    assert type(err.value).__name__ == "InvalidEvent"
