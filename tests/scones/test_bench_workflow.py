"""`scones bench workflow` on the running stack: every event ends in a named outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scones import bench_workflow, config, deploy

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def state_dir() -> Path:
    """The session's state dir: the bench drives the session's stack (tests/scones/conftest.py
    would give each test its own)."""
    return config.STATE_DIR


@pytest.fixture(scope="module")
def deployed(emulator, model_server) -> deploy.DeployResult:
    return deploy.deploy()


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scones", "bench", "workflow", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bench_without_a_staged_dataset_is_a_named_error(tmp_path):
    done = _cli("--smoke", "--data", str(tmp_path / "nowhere"), timeout=120)

    assert done.returncode == 1
    assert "no staged dataset" in done.stderr and "scones stage" in done.stderr
    assert "Traceback" not in done.stderr


def test_bench_refuses_an_unknown_path(shared_data):
    done = _cli("--smoke", "--data", str(shared_data), "--path", "fast", timeout=120)

    assert done.returncode == 1
    assert "--path must be one of mix, success, review" in done.stderr


@pytest.mark.slow
def test_bench_workflow_smoke_mix_accounts_for_every_event(deployed, shared_data):
    result = bench_workflow.bench_workflow(smoke=True, data=shared_data)

    print(json.dumps(result))
    outcomes = result["outcomes"]
    assert sum(outcomes.values()) == result["events"] == 40
    assert result["lost"] == 0 and result["still_running"] == 0 and result["duplicates"] == 0
    # the test split's images succeed or wait for review; the bad inputs (10 %) never succeed
    images, bad = result["outcomes_by_kind"]["image"], dict(result["outcomes_by_kind"])
    bad.pop("image")
    assert sum(images.values()) == 36 and set(images) <= {
        "succeeded",
        "review",
        "not_a_two_wheeler",
    }
    assert sum(sum(c.values()) for c in bad.values()) == 4
    assert "succeeded" not in {o for c in bad.values() for o in c}
    assert result["warmup_events"] == 10 and sum(result["warmup_outcomes"].values()) == 10
    assert result["executions_per_s"] > 0 and result["p50_ms"] > 0


@pytest.mark.slow
def test_bench_workflow_smoke_review_path_only_reviews(deployed, shared_data):
    # every test image once as the warm-up, so the review path has images to pick from
    result = bench_workflow.bench_workflow(
        smoke=True, data=shared_data, path="review", events=10, warmup_events=200
    )

    print(json.dumps(result))
    assert result["warmup_outcomes"].get("review", 0) > 0, result["warmup_outcomes"]
    assert result["outcomes"] == {"review": 10}
    assert result["latency_outcomes"] == {"review": result["latency_runs"]}


@pytest.mark.slow
def test_bench_workflow_baseline_runs_the_same_events_on_a_stock_stack(deployed, shared_data):
    done = _cli(
        "--smoke", "--json", "--baseline", "--data", str(shared_data), "--events", "20",
        "--warmup-events", "5",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    print(json.dumps(result))
    stock = result["stock"]
    assert result["speedups"] is True and stock["speedups"] is False
    assert stock["events"] == result["events"] == 20
    assert stock["outcomes"] == result["outcomes"]  # same events, same model: same outcomes
    assert stock["lost"] == 0 and stock["still_running"] == 0
    assert result["ratio_vs_stock"] == round(
        result["executions_per_s"] / stock["executions_per_s"], 2
    )
    assert not list(config.STATE_DIR.glob("bench-stock-*")), "the second stack's state was left"
