"""summarize_batch: a batch's records counted per outcome, label and error."""

from __future__ import annotations


def test_summary_counts_add_up_to_the_items(load_lambda, event, context):
    summarize = load_lambda("summarize_batch")
    request = event("summarize_batch")

    summary = summarize.handler(request, context)

    assert summary["total"] == len(request["results"]) == 5
    assert summary["outcomes"] == {
        "succeeded": 2,
        "review": 1,
        "not_a_two_wheeler": 0,
        "failed": 2,
    }
    assert sum(summary["outcomes"].values()) == summary["total"]
    assert summary["labels"] == {"bicycle": 1, "motorcycle": 1}
    assert summary["errors"] == {
        "ThresholdConfidenceNotMet": 1,
        "NotAnImage": 1,
        "MapIterationFailed": 1,
    }
    assert [item["outcome"] for item in summary["items"]] == [
        "succeeded",
        "succeeded",
        "review",
        "failed",
        "failed",
    ]


def test_summary_of_an_empty_batch_has_every_outcome_at_zero(load_lambda, context):
    summarize = load_lambda("summarize_batch")

    summary = summarize.handler({"s3_bucket": "b", "prefix": "p/", "results": []}, context)

    assert summary["total"] == 0
    assert summary["outcomes"] == {
        "succeeded": 0,
        "review": 0,
        "not_a_two_wheeler": 0,
        "failed": 0,
    }


def test_a_not_a_two_wheeler_item_is_its_own_outcome(load_lambda, context):
    """The image workflow's NotATwoWheeler (in the review queue too) is counted apart."""
    summarize = load_lambda("summarize_batch")
    results = [
        {"s3_key": "a.jpg", "outcome": "failed", "error": "NotATwoWheeler"},
        {"s3_key": "b.png", "outcome": "failed", "error": "ThresholdConfidenceNotMet"},
    ]

    summary = summarize.handler({"s3_bucket": "b", "prefix": "p/", "results": results}, context)

    assert summary["outcomes"]["not_a_two_wheeler"] == 1 and summary["outcomes"]["review"] == 1
    assert summary["errors"] == {"NotATwoWheeler": 1, "ThresholdConfidenceNotMet": 1}
