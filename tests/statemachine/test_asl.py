"""Static checks of every ASL file: state references, retries, the review branch, substitutions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from scones import deploy

ASL_FILES = sorted((Path(__file__).resolve().parents[2] / "statemachine").glob("*.json"))
TRANSIENT_LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
TERMINAL_TYPES = {"Succeed", "Fail"}


def machines(definition: dict, where: str = "") -> Iterator[tuple[str, dict]]:
    """The definition and every nested one (Map ItemProcessor/Iterator, Parallel Branches)."""
    yield where or "top", definition
    for name, state in definition["States"].items():
        for nested_key in ("ItemProcessor", "Iterator"):
            if nested_key in state:
                yield from machines(state[nested_key], f"{where}/{name}")
        for i, branch in enumerate(state.get("Branches", [])):
            yield from machines(branch, f"{where}/{name}[{i}]")


def targets(state: dict) -> list[str]:
    """Every state name a state can move to."""
    names = [state.get("Next"), state.get("Default")]
    names += [rule.get("Next") for rule in state.get("Choices", [])]
    names += [catch.get("Next") for catch in state.get("Catch", [])]
    return [n for n in names if n is not None]


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_there_are_two_state_machines():
    assert {p.name for p in ASL_FILES} == {"image_workflow.asl.json", "batch_workflow.asl.json"}


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_every_next_and_default_names_a_state_that_exists(path):
    for where, machine in machines(load(path)):
        states = machine["States"]
        assert machine["StartAt"] in states, f"{path.name}{where}: StartAt"
        for name, state in states.items():
            for target in targets(state):
                assert target in states, f"{path.name}{where}: {name} -> {target} does not exist"


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_every_state_ends_or_moves_on_and_is_reachable(path):
    for where, machine in machines(load(path)):
        states = machine["States"]
        for name, state in states.items():
            if state["Type"] in TERMINAL_TYPES or state["Type"] == "Choice":
                assert "Next" not in state and "End" not in state, f"{name}: terminal/choice"
            else:
                assert ("Next" in state) != bool(state.get("End")), f"{name}: Next xor End"
        seen, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += targets(states[name])
        assert seen == set(states), f"{path.name}{where}: unreachable {set(states) - seen}"


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_lambda_tasks_retry_transient_errors_with_full_jitter(path):
    for _, machine in machines(load(path)):
        for name, state in machine["States"].items():
            if state.get("Resource") != "arn:aws:states:::lambda:invoke":
                continue
            retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
            assert TRANSIENT_LAMBDA_ERRORS <= retried, name
            assert all(r.get("JitterStrategy") == "FULL" for r in state["Retry"]), name
            assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), name


def test_image_workflow_keeps_the_course_payload_shape():
    states = load(asl_file("image_workflow"))["States"]
    for name in ("SerializeImageData", "ClassifyImage", "FilterInferences"):
        assert states[name]["Parameters"]["Payload.$"] == "$", name
        assert states[name]["OutputPath"] == "$.Payload", name


def test_endpoint_unavailable_is_retried_with_backoff():
    retry = load(asl_file("image_workflow"))["States"]["ClassifyImage"]["Retry"]
    rule = next(r for r in retry if "EndpointUnavailable" in r["ErrorEquals"])
    assert rule["MaxAttempts"] >= 2 and rule["BackoffRate"] > 1
    assert rule["JitterStrategy"] == "FULL"


def test_low_confidence_goes_to_review_queue_then_notification_then_fails_by_name():
    """Both review reasons (low confidence, not a two-wheeler) take the review branch, and the
    queue message, the notification and the execution's error all carry which one it was."""
    states = load(asl_file("image_workflow"))["States"]
    catch = next(
        c
        for c in states["FilterInferences"]["Catch"]
        if "ThresholdConfidenceNotMet" in c["ErrorEquals"]
    )
    assert catch["ErrorEquals"] == ["ThresholdConfidenceNotMet", "NotATwoWheeler"]
    review = states[catch["Next"]]
    assert review["Resource"] == "arn:aws:states:::sqs:sendMessage"
    assert review["Parameters"]["MessageBody"]["error.$"] == "$.error.Error"
    notify = states[review["Next"]]
    assert notify["Resource"] == "arn:aws:states:::sns:publish"
    assert notify["Parameters"]["Message"]["error.$"] == "$.error.Error"
    fail = states[notify["Next"]]
    assert fail == {**fail, "Type": "Fail", "ErrorPath": "$.error.Error"}


def test_every_other_error_is_notified_then_fails_with_its_own_name():
    states = load(asl_file("image_workflow"))["States"]
    for name in ("SerializeImageData", "ClassifyImage", "FilterInferences"):
        catch_all = next(c for c in states[name]["Catch"] if c["ErrorEquals"] == ["States.ALL"])
        notify = states[catch_all["Next"]]
        assert notify["Resource"] == "arn:aws:states:::sns:publish"
        message = notify["Parameters"]["Message"]
        assert {"execution.$", "state.$", "error.$", "cause.$", "s3_key.$"} <= set(message)
        fail = states[notify["Next"]]
        assert fail["Type"] == "Fail" and fail["ErrorPath"] == "$.error.Error"


def test_batch_map_is_bounded_and_tolerates_failures():
    states = load(asl_file("batch_workflow"))["States"]
    the_map = next(s for s in states.values() if s["Type"] == "Map")
    assert "MaxConcurrencyPath" in the_map or "MaxConcurrency" in the_map
    assert "ToleratedFailurePercentagePath" in the_map or "ToleratedFailurePercentage" in the_map
    task = the_map["ItemProcessor"]["States"][the_map["ItemProcessor"]["StartAt"]]
    assert task["Resource"] == "arn:aws:states:::states:startExecution.sync:2"


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_deploy_fills_every_placeholder_and_the_result_is_json(path):
    needed = deploy.placeholders(path.read_text())
    assert needed, "ARNs must be substitutions, not hard-coded"
    rendered = deploy.render_definition(path, {name: f"value-{name}" for name in needed})
    assert "${" not in rendered
    json.loads(rendered)


def test_no_account_or_region_is_hard_coded():
    for path in ASL_FILES:
        text = path.read_text()
        assert "000000000000" not in text and "us-east-1" not in text, path.name


def asl_file(name: str) -> Path:
    return next(p for p in ASL_FILES if p.name == f"{name}.asl.json")
