"""The explorer: its logic on a real small run, and the page in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from scones import explore
from scones.load import run_load
from scones.report import clients, threshold_effect

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # streamlit_app is not an installed package
sys.path.insert(0, str(ROOT / "tests" / "scones"))  # the shared stack helpers
from workflow_stack import deployed_workflow, stage_test_data  # noqa: E402

from scones.stack import free_port  # noqa: E402
from streamlit_app import explorer as ex  # noqa: E402

pytestmark = pytest.mark.integration

RUN = 8
CHROMIUM = Path("/usr/bin/chromium")  # Debian's: apt-get install -y chromium chromium-driver
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "artifacts"
START_TIMEOUT_S = 60.0
UI_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def small_run(emulator, model_server, tmp_path_factory):
    """A few executions of a fresh run (two thirds images, the rest bad inputs)."""
    stage_test_data(tmp_path_factory.mktemp("explorer-data"))
    deployed_workflow()
    summary = run_load(RUN, bad_share=0.34, seed=7)
    assert summary.unaccounted == 0
    return summary


@pytest.fixture(scope="module")
def records(small_run):
    return ex.Explorer().records(small_run.name_prefix, limit=100)


def test_table_lists_each_execution_of_the_run_newest_first(small_run, records):
    rows = ex.table_rows(records)
    assert len(rows) == RUN
    assert sorted(r["execution"] for r in rows) == [
        f"{small_run.name_prefix}{i:05d}" for i in range(RUN)
    ]
    assert [r["started"] for r in rows] == sorted((r["started"] for r in rows), reverse=True)
    counts = ex.counts(records)
    assert counts["succeeded"] == small_run.succeeded and counts["running"] == 0
    assert counts["review"] == small_run.reviewed and counts["failed"] == small_run.failed
    assert counts["not_a_two_wheeler"] == small_run.not_a_two_wheeler


def test_detail_shows_each_state_with_its_input_output_and_the_image(records):
    record = next(r for r in records if r.label is not None)
    detail = ex.execution_detail(clients(), record.arn)
    names = [s["state"] for s in detail.states]
    assert "SerializeImageData" in names and "ClassifyImage" in names
    assert ex.is_image(detail.image)
    serialize = detail.states[names.index("SerializeImageData")]
    assert "base64 chars" in json.dumps(serialize["output"])  # image_data shortened for display
    if record.outcome == "review":
        assert detail.review_message["s3_key"] == record.s3_key
        assert detail.notification["message"]["outcome"] == "review"


def test_detail_of_a_failure_has_its_error_and_notification(records):
    failed = [r for r in records if r.outcome == "failed"]
    if not failed:
        pytest.skip("this run's bad inputs all got classified")
    detail = ex.execution_detail(clients(), failed[0].arn)
    assert detail.notification["message"]["outcome"] == "failed"
    assert detail.notification["message"]["error"] == failed[0].error
    assert any(s["errors"] for s in detail.states)


def test_threshold_view_trades_coverage_for_errors(records):
    view = ex.threshold_view(records, 0.93)
    coverages = [p["coverage"] for p in view["sweep"]]
    assert coverages == sorted(coverages, reverse=True)  # higher threshold, less routed
    assert view["sweep"][0]["coverage"] == 1.0  # top probability of two classes >= 0.5
    assert view["at"]["n"] == sum(1 for r in records if r.confidence is not None)


def test_review_queue_peek_leaves_the_messages_there(small_run):
    c = clients()
    first = ex.review_queue(c)
    second = ex.review_queue(c)
    assert first["url"] and second["depth"] >= first["depth"]
    if small_run.reviewed:
        assert first["depth"] > 0 and first["messages"]
        assert {"s3_key", "execution"} <= set(first["messages"][0])


def test_health_lists_the_stack_and_the_workflow(small_run):
    rows = {r["part"]: r for r in ex.stack_health(clients())}
    for part in ("emulator", "model", "image workflow", "review queue", "threshold"):
        assert rows[part]["ok"], rows[part]
    capture = rows["data capture"]  # the stack's model server captures
    assert capture["ok"], capture
    assert re.fullmatch(r"\d+ records in s3://\S+, \d+ not there yet", capture["detail"]), capture


# ------------------------------ The page in Chromium ------------------------------


@pytest.fixture(scope="module")
def explorer_url(small_run, tmp_path_factory):
    """`scones explore`'s command (streamlit run streamlit_app/app.py) on a free loopback port."""
    port = free_port()
    log = tmp_path_factory.mktemp("explorer") / "streamlit.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            explore.command(port),
            env=explore.environment(),
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"streamlit did not start: {log.read_text()[-2000:]}")
        time.sleep(0.3)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: apt-get install -y chromium chromium-driver")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _metric(page, label: str):
    return (
        page.locator('[data-testid="stMetric"]')
        .filter(has_text=label)
        .first.locator('[data-testid="stMetricValue"]')
    )


def test_explorer_page_lists_drills_down_and_moves_the_threshold(
    small_run, records, explorer_url, browser
):
    from playwright.sync_api import expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(explorer_url)

    # The executions of the run are listed.
    page.get_by_label("Execution names starting with").fill(small_run.name_prefix)
    page.keyboard.press("Enter")
    expect(_metric(page, "executions")).to_have_text(str(RUN))
    names = [f"{small_run.name_prefix}{i:05d}" for i in range(RUN)]
    cells = page.locator('[data-testid^="glide-cell-0-"]')
    expect(cells.filter(has_text=names[0])).to_have_count(1)
    assert sorted(t.strip() for t in cells.all_inner_texts() if t.strip() in names) == names

    # Selecting one shows its image and its states.
    chosen = next(r for r in records if r.label is not None)
    page.get_by_role("tab", name="Execution", exact=True).click()
    page.locator('[data-testid="stSelectbox"]').first.click()
    page.keyboard.type(chosen.name)
    page.keyboard.press("Enter")
    expect(
        page.locator('[data-testid="stImageCaption"]').filter(has_text=chosen.s3_key)
    ).to_be_visible()
    expect(page.locator('[data-testid="stImage"] img').first).to_be_visible()
    for state in ("SerializeImageData", "ClassifyImage", "FilterInferences"):
        expect(page.locator('[data-testid="stExpander"]').filter(has_text=state)).not_to_have_count(
            0
        )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)

    # Moving the threshold changes the coverage figure, to what the records say.
    page.get_by_role("tab", name="Threshold", exact=True).click()
    points = [(r.confidence, r.correct) for r in records if r.confidence is not None]
    shown = {}
    slider = page.get_by_role("slider").first
    for key, threshold in (("Home", 0.50), ("End", 1.00)):
        slider.focus()
        page.keyboard.press(key)
        expected = f"{threshold_effect(points, threshold)['coverage']:.1%}"
        expect(_metric(page, "coverage")).to_have_text(expected)
        shown[threshold] = expected
    assert len(set(shown.values())) == 2, f"coverage did not change: {shown}"
    page.screenshot(path=str(ARTIFACTS / "explorer-threshold.png"), full_page=True)
    page.close()
