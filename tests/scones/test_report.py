"""`scones report` on the running stack: counts, truth, accuracy, latency and figures add up."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from scones.executions import record_from_history
from scones.load import run_load
from scones.report import (
    ExecutionRecord,
    ReportSummary,
    build_report,
    parse_capture_line,
    parse_since,
    render_html,
    summarize,
    threshold_effect,
)

sys.path.insert(0, os.path.dirname(__file__))  # pytest's importlib mode adds no test folder
from workflow_stack import deployed_workflow, stage_test_data, staged_test_images  # noqa: E402

RUN = 12


@pytest.fixture(scope="module")
def small_run(emulator, model_server, tmp_path_factory):
    """A dozen executions, a quarter of them bad inputs; their truth from the staged .lst."""
    source = stage_test_data(tmp_path_factory.mktemp("report-data"))
    deployed_workflow()
    summary = run_load(RUN, bad_share=0.25, seed=5)
    assert summary.unaccounted == 0
    return summary, dict(staged_test_images(source))


@pytest.fixture(scope="module")
def report(small_run, tmp_path_factory):
    summary, _ = small_run
    out = tmp_path_factory.mktemp("report")
    return build_report(out, name_prefix=summary.name_prefix)


def test_report_counts_every_execution_of_the_selection(small_run, report):
    summary, _ = small_run
    data = json.loads(report.json.read_text())
    s = ReportSummary(**data["summary"])  # report.json holds the typed summary, whole
    assert s == report.summary
    assert s.executions == RUN == len(data["executions"])
    assert s.outcomes["running"] == 0
    assert s.outcomes["succeeded"] == summary.succeeded
    assert s.outcomes["review"] == summary.reviewed
    assert s.outcomes["not_a_two_wheeler"] == summary.not_a_two_wheeler
    assert s.outcomes["failed"] == summary.failed
    assert s.failed_by_error == summary.failed_by_error


def test_report_knows_the_truth_of_staged_images_and_scores_it(small_run, report):
    _, truth = small_run
    rows = json.loads(report.json.read_text())["executions"]
    judged = [r for r in rows if r["s3_key"] in truth and r["label"] is not None]
    assert judged, "the run classified no staged image"
    for row in judged:
        assert row["truth"] == truth[row["s3_key"]]
        assert row["correct"] == (row["label"] == row["truth"])
    accuracy = sum(r["correct"] for r in judged) / len(judged)
    assert report.summary.judged == len(judged)
    assert report.summary.accuracy == pytest.approx(accuracy)
    matrix = report.summary.confusion
    assert sum(map(sum, matrix)) == len(judged)


def test_report_has_latency_per_step_from_the_histories(report):
    latency = report.summary.latency_s
    for state in ("SerializeImageData", "(execution)"):
        assert latency[state]["n"] > 0
        assert 0 < latency[state]["p50"] <= latency[state]["max"]
    assert latency["(execution)"]["n"] == RUN


def test_report_page_is_self_contained(report):
    page = report.html.read_text()
    assert page.count("data:image/png;base64,") >= 3  # timeline, outcomes, latency (+ thumbs)
    assert "http://" not in page and "https://" not in page  # nothing fetched when opened
    assert "Confidence over time" in page and "Latency per step" in page
    for name in ("confidence", "outcomes", "latency"):
        png = (report.html.parent / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG")
    for row in json.loads(report.json.read_text())["executions"]:
        assert row["name"] in page


def test_scones_report_cli_writes_the_page_and_prints_json(small_run, tmp_path):
    summary, _ = small_run
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scones",
            "report",
            "--out",
            str(tmp_path),
            "--name-prefix",
            summary.name_prefix,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["executions"] == RUN
    assert (tmp_path / "index.html").is_file() and (tmp_path / "report.json").is_file()


def test_capture_records_are_read_as_model_monitor_writes_them():
    from local_model.capture import CaptureConfig, capture_record

    cfg = CaptureConfig(destination="s3://bucket/data_capture")
    image = b"\x89PNG\r\n\x1a\n fake"
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    record = capture_record(
        cfg,
        input_data=image,
        input_content_type="image/png",
        output_data=b"[0.25, 0.75]",
        output_content_type="application/json",
        when=when,
    )
    parsed = parse_capture_line(json.dumps(record))
    assert parsed.inferences == [0.25, 0.75]
    assert parsed.confidence == 0.75 and parsed.top == 1
    assert parsed.time == when
    import hashlib

    assert parsed.image_sha == hashlib.sha256(image).hexdigest()


def test_threshold_effect_counts_coverage_and_errors():
    points = [(0.99, True), (0.95, False), (0.80, True), (0.60, None)]
    at = threshold_effect(points, 0.9)
    assert at["routed"] == 2 and at["review"] == 2
    assert at["coverage"] == 0.5
    assert at["errors"] == 1 and at["error_rate"] == 0.5
    assert threshold_effect(points, 0.5)["coverage"] == 1.0


def test_a_low_confidence_history_is_a_review_with_its_label():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    body = {
        "image_data": base64.b64encode(b"img").decode(),
        "s3_bucket": "b",
        "s3_key": "k.png",
        "inferences": [0.6, 0.4],
        "label": "bicycle",
        "confidence": 0.6,
    }

    def at(ms: int) -> datetime:
        return start + timedelta(milliseconds=ms)

    events = [
        {
            "type": "ExecutionStarted",
            "timestamp": at(0),
            "executionStartedEventDetails": {
                "input": json.dumps({"s3_bucket": "b", "s3_key": "k.png"})
            },
        },
        {
            "type": "TaskStateEntered",
            "timestamp": at(1),
            "stateEnteredEventDetails": {"name": "ClassifyImage", "input": "{}"},
        },
        {
            "type": "TaskScheduled",
            "timestamp": at(2),
            "taskScheduledEventDetails": {
                "resourceType": "lambda",
                "resource": "invoke",
                "parameters": "{}",
            },
        },
        {
            "type": "TaskFailed",
            "timestamp": at(30),
            "taskFailedEventDetails": {"error": "EndpointUnavailable", "cause": "refused"},
        },
        {
            "type": "TaskScheduled",
            "timestamp": at(40),
            "taskScheduledEventDetails": {
                "resourceType": "lambda",
                "resource": "invoke",
                "parameters": "{}",
            },
        },
        {
            "type": "TaskStateExited",
            "timestamp": at(51),
            "stateExitedEventDetails": {
                "name": "ClassifyImage",
                "output": json.dumps({"statusCode": 200, "body": body}),
            },
        },
        {
            "type": "ExecutionFailed",
            "timestamp": at(60),
            "executionFailedEventDetails": {"error": "ThresholdConfidenceNotMet", "cause": "below"},
        },
    ]
    summary = {
        "executionArn": "arn:aws:states:us-east-1:0:execution:m:x",
        "status": "FAILED",
        "startDate": start,
        "stopDate": at(60),
    }
    r = record_from_history(summary, events)
    assert r.outcome == "review" and r.label == "bicycle" and r.confidence == 0.6
    assert r.s3_key == "k.png" and r.image == b"img"
    assert r.retries == 1 and r.steps["ClassifyImage"] == pytest.approx(0.050)
    s = summarize([r], 0.93)
    assert s.outcomes["review"] == 1 and s.retries == 1


def test_not_a_two_wheeler_is_its_own_outcome_in_the_report():
    """The filter's NotATwoWheeler: in the review queue, but counted, drawn and shown apart."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = []
    for i, error in enumerate(("NotATwoWheeler", "ThresholdConfidenceNotMet", "NotAnImage")):
        summary = {
            "executionArn": f"arn:aws:states:us-east-1:0:execution:m:x{i}",
            "status": "FAILED",
            "startDate": start,
            "stopDate": start + timedelta(seconds=1),
        }
        events = [
            {
                "type": "ExecutionFailed",
                "timestamp": start + timedelta(seconds=1),
                "executionFailedEventDetails": {"error": error, "cause": "c"},
            }
        ]
        record = record_from_history(summary, events)
        record.label, record.confidence = "motorcycle", 0.6  # classify ran: the filter had these
        records.append(record)

    assert [r.outcome for r in records] == ["not_a_two_wheeler", "review", "failed"]
    assert records[0].failed_state == "FilterInferences"
    s = summarize(records, 0.93)
    assert s.outcomes["not_a_two_wheeler"] == 1 and s.outcomes["review"] == 1
    assert s.failed_by_error == {"NotAnImage": 1}
    meta = {"generated": "2026-01-01T00:00:00Z", "target": "local", "selection": "all",
            "confidence_source": "executions"}  # fmt: skip
    page = render_html(s, records, {}, meta)
    assert "not a two-wheeler" in page


def test_summary_scores_only_images_with_a_known_truth():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = [
        ExecutionRecord(
            "a",
            "a",
            "SUCCEEDED",
            start,
            start,
            s3_key="1",
            label="bicycle",
            confidence=0.99,
            truth="bicycle",
        ),
        ExecutionRecord(
            "b",
            "b",
            "SUCCEEDED",
            start,
            start,
            s3_key="2",
            label="bicycle",
            confidence=0.97,
            truth="motorcycle",
        ),
        ExecutionRecord("c", "c", "FAILED", start, start, s3_key="3", error="NotAnImage"),
    ]
    s = summarize(records, 0.93)
    assert s.judged == 2 and s.accuracy == 0.5
    assert s.classes == ["bicycle", "motorcycle"]
    assert s.confusion == [[1, 0], [1, 0]]
    assert s.failed_by_error == {"NotAnImage": 1}


def test_since_accepts_durations_and_iso_times():
    assert parse_since(None) is None
    ago = datetime.now(UTC) - parse_since("30m")
    assert timedelta(minutes=29) < ago < timedelta(minutes=31)
    assert parse_since("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    from scones.report import ReportError

    with pytest.raises(ReportError, match="--since"):
        parse_since("yesterday")
