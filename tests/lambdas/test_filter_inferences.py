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


def test_an_unknown_image_goes_to_review_as_not_a_two_wheeler(filter_module, event, context):
    """scones' classify step adds the model's ood_score; when it alone keeps the image below the
    threshold, the reason is NotATwoWheeler, not a bare low confidence."""
    with pytest.raises(Exception) as err:
        filter_module.handler(event("filter_inferences_not_a_two_wheeler"), context)

    assert type(err.value).__name__ == "NotATwoWheeler"
    assert "school_bus_0001.jpg" in str(err.value) and "0.870" in str(err.value)


@pytest.mark.parametrize(
    ("ood_score", "error"),
    [
        (None, "ThresholdConfidenceNotMet"),  # the course's classify Lambda sends no score
        (0.0, "ThresholdConfidenceNotMet"),
        (0.13, "ThresholdConfidenceNotMet"),  # a confident 1.0 would still pass at u = 0.13
        (0.15, "NotATwoWheeler"),  # from (1 - 0.93) / (1 - 1/2) = 0.14 nothing can pass
    ],
)
def test_the_reason_follows_the_unknown_score_cut(filter_module, context, ood_score, error):
    body = {"s3_key": "k.png", "inferences": [0.3, 0.7]}
    if ood_score is not None:
        body["ood_score"] = ood_score

    with pytest.raises(Exception) as err:
        filter_module.handler({"statusCode": 200, "body": body}, context)

    assert type(err.value).__name__ == error
    assert filter_module.unknown_cut(0.93, 2) == pytest.approx(0.14)


def test_a_threshold_above_one_is_low_confidence_for_a_known_image(load_lambda, monkeypatch):
    """Above 1 nothing passes and the cut is negative: u = 0 still means a known kind."""
    monkeypatch.setenv("THRESHOLD", "1.01")
    filter_module = load_lambda("filter_inferences")
    for ood, error in ((0.0, "ThresholdConfidenceNotMet"), (0.2, "NotATwoWheeler")):
        with pytest.raises(Exception) as err:
            filter_module.handler({"body": {"inferences": [0.01, 0.99], "ood_score": ood}}, None)
        assert type(err.value).__name__ == error


def test_a_confident_result_passes_whatever_its_unknown_score(filter_module, context):
    body = filter_module.handler({"body": {"inferences": [0.01, 0.99], "ood_score": 0.5}}, context)

    assert (body["body"]["label"], body["body"]["ood_score"]) == ("motorcycle", 0.5)


def test_a_malformed_unknown_score_is_refused_by_name(filter_module, context):
    with pytest.raises(Exception) as err:
        filter_module.handler({"body": {"inferences": [0.4, 0.6], "ood_score": "high"}}, context)

    assert type(err.value).__name__ == "InvalidEvent"
