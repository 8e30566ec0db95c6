"""`scones bench workflow` on the running stack: every event ends in a named outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
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

    assert done.returncode == 2  # a usage error: nothing was started
    assert "no staged dataset" in done.stderr and "scones stage" in done.stderr
    assert "Traceback" not in done.stderr


def test_bench_refuses_an_unknown_path(shared_data):
    done = _cli("--smoke", "--data", str(shared_data), "--path", "fast", timeout=120)

    assert done.returncode == 2
    assert "--path must be one of mix, success, review" in done.stderr


def test_bench_refuses_an_empty_window(shared_data):
    done = _cli("--smoke", "--data", str(shared_data), "--window", "0", timeout=120)

    assert done.returncode == 2
    assert "--window must be at least 1, got 0" in done.stderr


def test_windows_split_executions_in_the_order_they_ended_and_drift_compares_ends():
    since = datetime(2026, 12, 5, tzinfo=UTC)
    # 4 ended at 1 s each, then 4 at 2 s each, then 1 more (a partial window, left out)
    stops = [since + timedelta(seconds=s) for s in (1, 2, 3, 4, 6, 8, 10, 12, 13)]

    rates = bench_workflow.windows(since, list(reversed(stops)), 4)

    assert rates == [1.0, 0.5]
    assert bench_workflow.drift(rates) == 0.5
    assert bench_workflow.drift(rates[:1]) is None


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
    # --smoke's windows of 10: the long-lived check's figures, on a small scale
    assert result["window"] == 10 and len(result["windows_per_s"]) == 4
    assert all(rate > 0 for rate in result["windows_per_s"]) and result["drift"] is not None
    # where the CPU went: the stack's processes here (the runtimes ran the handlers) and ours
    cpu, bound = result["cpu_ms_per_execution"], result["cpu_bound_per_s"]
    assert all(cpu[p] > 0 for p in ("emulator", "lambda_runtimes", "model", "bench")), cpu
    assert cpu["total"] == pytest.approx(sum(cpu.values()) - cpu["total"], abs=0.3)
    assert bound["all_cores"] == pytest.approx(bound["cores"] * 1000 / cpu["total"], rel=0.01)
    assert bound["emulator_one_core"] == pytest.approx(1000 / cpu["emulator"], rel=0.01)


def test_events_the_budget_left_unsent_are_not_sent_not_lost(deployed, shared_data):
    """Uploads wait while MAX_IN_FLIGHT executions run, so a stack slower than the budget
    leaves events unsent. They were counted as lost: the stock stack of a 1,000-event
    --baseline run "lost" 117 events that were never uploaded."""
    images = bench_workflow.test_split(shared_data)
    events = [images[i % len(images)] for i in range(60)]
    # no budget at all: the bench lists once, stops uploading, follows what it sent
    result = bench_workflow.bench_throughput(
        bench_workflow.Clients(), events, timeout=0, upload_threads=1
    )

    print(json.dumps(result))
    assert result["not_sent"] > 0, "every event was uploaded before the first list: no check"
    assert result["lost"] == 0 and result["duplicates"] == 0
    assert result["outcomes"]["not_sent"] == result["not_sent"]
    assert sum(result["outcomes"].values()) == result["events"] == 60
    sent = result["events"] - result["not_sent"]
    assert sum(n for o, n in result["outcomes"].items() if o != "not_sent") == sent


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
    # the second emulator's own CPU; the model server is the first stack's, so not counted
    assert stock["cpu_ms_per_execution"]["emulator"] > 0
    assert stock["cpu_ms_per_execution"]["model"] is None
    assert stock["cpu_ms_per_execution"]["total"] is None
    assert stock["cpu_bound_per_s"]["emulator_one_core"] > 0
    assert not list(config.STATE_DIR.glob("bench-stock-*")), "the second stack's state was left"
