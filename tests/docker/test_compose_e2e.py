"""`docker compose up` end to end: built from a bare copy of the repository, checked from outside.

`make compose-test` runs it (it installs Docker and the compose plugin, starts dockerd and builds
the stand-in base images where Docker Hub cannot be reached). The copy has no ../shared beside it,
as a user's clone: the deployer downloads the dataset, here from a mirror service in the compose
network (tests/docker/compose.mirror.yaml) serving a cifar-100-python tarball built from the shared
copy's real images, since the official URL cannot be reached from CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from scones import PROJECT_ROOT, config

sys.path.insert(0, str(Path(__file__).parent))
from cifar_tarball import build_cifar_tarball  # noqa: E402

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("SCONES_COMPOSE_TEST") != "1",
        reason="builds and runs the containers (minutes): `make compose-test` runs it",
    ),
]

SHARED = Path(os.environ.get("SCONES_SHARED_DATA") or PROJECT_ROOT.parent / "shared" / "data")
SHARED_COPY = SHARED / "cifar100-scones"
PROJECT = os.environ.get("SCONES_COMPOSE_PROJECT") or f"scones-e2e-{config.EMULATOR_PORT}"
EXPLORER_PORT = int(os.environ.get("SCONES_EXPLORER_PORT") or config.MODEL_PORT + 1)
MIRROR_URL = "http://dataset-mirror:8000/cifar-100-python.tar.gz"
BUILD_TIMEOUT_S = 1800
UP_TIMEOUT_S = 600
RECOVER_TIMEOUT_S = 240
EXECUTION_TIMEOUT_S = 60
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class Stack:
    """The compose project run from a copy of the repository."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        argv = ["docker", "compose", "-f", "compose.yaml", "-f", "tests/docker/compose.mirror.yaml"]
        done = subprocess.run(
            [*argv, "--project-name", PROJECT, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert done.returncode == 0, f"docker compose {' '.join(args)}:\n{done.stderr[-4000:]}"
        return done.stdout + done.stderr

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service)


def copy_repository(dest: Path) -> Path:
    """The files git knows (tracked or not ignored): what a user's clone holds."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = PROJECT_ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not SHARED_COPY.is_dir():
        pytest.skip(f"no shared copy at {SHARED_COPY} to build the mirror's tarball from")
    root = copy_repository(tmp_path_factory.mktemp("clone") / "scones")
    assert not (root.parent / "shared").exists()  # as a user's clone: no ../shared beside it
    mirror = tmp_path_factory.mktemp("mirror")
    _, md5 = build_cifar_tarball(SHARED_COPY, mirror)
    env = {k: v for k, v in os.environ.items() if k != "SCONES_DATA_DIR"}
    env.update(
        SCONES_TEST_MIRROR_DIR=str(mirror),
        SCONES_DATASET_URL=MIRROR_URL,
        SCONES_DATASET_MD5=md5,
        SCONES_EMULATOR_PORT=str(config.EMULATOR_PORT),
        SCONES_MODEL_PORT=str(config.MODEL_PORT),
        SCONES_EXPLORER_PORT=str(EXPLORER_PORT),
    )
    s = Stack(root, env)
    s.compose("down", "-v", "--remove-orphans", timeout=120, check=False)  # a crashed run's
    s.compose("build", timeout=BUILD_TIMEOUT_S)
    try:
        s.compose("up", "-d", "--wait", timeout=UP_TIMEOUT_S)
    except AssertionError:
        print(s.compose("logs", "--no-color", "--tail", "80", check=False))
        s.compose("down", "-v", "--remove-orphans", timeout=120, check=False)
        raise
    yield s
    s.compose("down", "-v", "--remove-orphans", timeout=120, check=False)


@pytest.fixture(scope="module")
def aws(stack):
    from scones.deploy import Clients  # AWS_ENDPOINT_URL: the emulator container's port

    return Clients()


@pytest.fixture(scope="module")
def confident_image() -> tuple[str, bytes]:
    """A test image the model container labels above the threshold (asked, not assumed)."""
    for line in (SHARED_COPY / "test.lst").read_text().splitlines()[:40]:
        name = line.split("\t")[2]
        data = (SHARED_COPY / "test" / name).read_bytes()
        request = urllib.request.Request(
            config.model_url() + "/invocations", data=data, headers={"Content-Type": "image/png"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            if max(json.loads(response.read())) >= config.CONFIDENCE_THRESHOLD:
                return name, data
    pytest.skip("the model is confident about none of the first 40 test images")


def run_incoming(aws, name: str, data: bytes) -> dict:
    """Put an object under incoming/ and return the execution it started, once ended."""
    from scones import workflow

    key = f"{config.INCOMING_PREFIX}e2e-{uuid.uuid4().hex[:8]}/{name}"
    machine = workflow.state_machine_arn(aws, "image_workflow")
    aws.s3.put_object(Bucket=config.BUCKET, Key=key, Body=data)
    deadline = time.monotonic() + EXECUTION_TIMEOUT_S
    while time.monotonic() < deadline:
        for e in aws.sfn.list_executions(stateMachineArn=machine)["executions"]:
            described = aws.sfn.describe_execution(executionArn=e["executionArn"])
            detail = json.loads(described["input"]).get("detail", {})
            if detail.get("object", {}).get("key") == key:
                return workflow.wait(aws, e["executionArn"], EXECUTION_TIMEOUT_S)
        time.sleep(0.5)
    pytest.fail(f"no execution started for s3://{config.BUCKET}/{key}")


def scones_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scones", *args], capture_output=True, text=True, timeout=300
    )


# ------------------------------ Tests, in the order a user meets them ------------------------


def test_the_deployer_downloaded_the_dataset_md5_checked_with_progress(stack):
    log = stack.logs("deployer")
    assert "SCONES_DATA_DIR is unset" in log
    assert f"download {MIRROR_URL}:" in log and "100%" in log, log[-3000:]
    assert "the workflow is deployed" in log
    assert stack.logs("dataset-mirror").count("GET /cifar-100-python.tar.gz") == 1


def test_a_data_dir_that_does_not_exist_stops_up_before_anything_starts(stack, tmp_path):
    missing = tmp_path / "no-such-folder"
    env = {**stack.env, "SCONES_DATA_DIR": str(missing)}
    project = f"{PROJECT}-missing"
    argv = ["docker", "compose", "--project-name", project]
    try:
        done = subprocess.run(
            [*argv, "up", "-d", "--no-build"],
            cwd=stack.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode != 0
        assert f"bind source path does not exist: {missing}" in done.stderr, done.stderr[-2000:]
        running = subprocess.run(
            [*argv, "ps", "-q", "--status", "running"],
            cwd=stack.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert running.stdout.strip() == ""  # nothing was started: the mount fails at create
    finally:
        subprocess.run(
            [*argv, "down", "-v"], cwd=stack.root, env=env, capture_output=True, timeout=180
        )
    assert not missing.exists()  # not created as an empty folder


def test_the_model_image_holds_only_what_serving_needs(stack):
    probe = (
        "import importlib.util as u; print([m for m in ('streamlit', 'torch', 'matplotlib', "
        "'typer', 'rich', 'pandas') if u.find_spec(m)])"
    )
    assert stack.compose("exec", "-T", "model", "python", "-c", probe).strip() == "[]"


def test_an_upload_under_incoming_ends_succeeded_with_a_label(stack, aws, confident_image):
    described = run_incoming(aws, *confident_image)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"])["label"] in ("bicycle", "motorcycle")


def test_a_non_image_ends_failed_with_its_named_error(stack, aws):
    described = run_incoming(aws, "not-an-image.png", b"these bytes are no PNG")
    assert (described["status"], described.get("error")) == ("FAILED", "NotAnImage")


def test_data_capture_reaches_s3(stack, aws, confident_image):
    deadline = time.monotonic() + 30  # the capture writer flushes every 5 s
    keys: list[str] = []
    while not keys and time.monotonic() < deadline:
        listed = aws.s3.list_objects_v2(Bucket=config.BUCKET, Prefix="data_capture/")
        keys = [o["Key"] for o in listed.get("Contents", [])]
        time.sleep(1)
    assert keys, "no data capture file under s3://scones-data/data_capture/"
    record = aws.s3.get_object(Bucket=config.BUCKET, Key=keys[0])["Body"].read().splitlines()[0]
    assert "captureData" in json.loads(record)


def test_the_host_cli_works_against_the_containers(stack, confident_image, tmp_path):
    # One probe each, with a 2 s timeout: on a loaded machine a probe can miss; a few tries.
    for _ in range(5):
        status = scones_cli("status")
        if status.returncode == 0:
            break
        time.sleep(2)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"127.0.0.1:{config.EMULATOR_PORT}" in status.stdout + status.stderr  # rich: stderr

    image = tmp_path / confident_image[0]
    image.write_bytes(confident_image[1])
    run = scones_cli("run", str(image), "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    outcome = json.loads(run.stdout)
    assert outcome["status"] == "SUCCEEDED" and outcome["label"] in ("bicycle", "motorcycle")

    report = scones_cli("report", "--out", str(tmp_path / "report"), "--json")
    assert report.returncode == 0, report.stdout + report.stderr
    assert Path(json.loads(report.stdout)["html"]).is_file()


def test_the_health_the_explorer_shows_is_true_inside_the_containers(stack):
    probe = (
        "import json; from streamlit_app import explorer as ex; from scones.report import clients;"
        " print(json.dumps({r['part']: r['ok'] for r in ex.stack_health(clients())}))"
    )
    health = json.loads(stack.compose("exec", "-T", "explorer", "python", "-c", probe).strip())
    assert health["emulator"] and health["model"] and health["image workflow"], health


def test_the_explorer_renders_its_executions_table_in_chromium(stack, aws):
    from scones import workflow

    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: apt-get install -y chromium (make browser)")
    machine = workflow.state_machine_arn(aws, "image_workflow")
    names = {e["name"] for e in aws.sfn.list_executions(stateMachineArn=machine)["executions"]}
    assert names, "the earlier tests ran executions"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"http://127.0.0.1:{EXPLORER_PORT}")
        # The table's first column: one cell per execution, named as Step Functions names it.
        cells = page.locator('[data-testid^="glide-cell-0-"]')
        sync_api.expect(cells).not_to_have_count(0, timeout=60_000)
        shown = {t.strip() for t in cells.all_inner_texts()}
        (PROJECT_ROOT / "artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(PROJECT_ROOT / "artifacts" / "compose-explorer.png"))
        browser.close()
    assert names <= shown, f"executions {names - shown} are not in the explorer's table"


def test_lambda_tmp_inside_the_emulator_container_falls_back_to_a_private_tmpdir(stack):
    """No CAP_SYS_ADMIN in the container: no mount namespace, so TMPDIR is private, /tmp shared."""
    probe = "from scones_emulator.process import private_tmp_prefix; print(private_tmp_prefix())"
    printed = stack.compose("exec", "-T", "emulator", "python", "-c", probe)
    assert printed.splitlines()[0] == "None"  # then the warning, on stderr
    assert "no mount namespaces here" in stack.logs("emulator")  # said once Lambdas had run


def test_restarting_the_emulator_brings_the_workflow_back(stack, aws, confident_image):
    stack.compose("restart", "emulator", timeout=120)
    deadline = time.monotonic() + RECOVER_TIMEOUT_S
    check = scones_cli("deploy", "--check")
    while check.returncode != 0 and time.monotonic() < deadline:
        time.sleep(3)
        check = scones_cli("deploy", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    described = run_incoming(aws, *confident_image)
    assert described["status"] == "SUCCEEDED", described
    # Deployed again from the cached download: the mirror served the tarball once in all.
    assert stack.logs("dataset-mirror").count("GET /cifar-100-python.tar.gz") == 1


def test_down_v_leaves_no_container_volume_or_network(stack):
    stack.compose("down", "-v", timeout=180)
    label = f"label=com.docker.compose.project={PROJECT}"
    for kind in (["ps", "-a"], ["volume", "ls"], ["network", "ls"]):
        listed = subprocess.run(
            ["docker", *kind, "-q", "--filter", label], capture_output=True, text=True, timeout=60
        )
        assert listed.stdout.strip() == "", f"docker {' '.join(kind)}: {listed.stdout}"


def test_bench_compose_smoke_prints_every_figure_with_a_data_dir(stack):
    """The benchmark's CI mode, on the repository itself with SCONES_DATA_DIR given (read-only)."""
    done = subprocess.run(
        [sys.executable, "-m", "scones", "bench", "compose", "--smoke", "--json"],
        env={**os.environ, "SCONES_DATA_DIR": str(SHARED_COPY)},
        capture_output=True,
        text=True,
        timeout=UP_TIMEOUT_S + 600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    # The benchmark's image may score under the threshold: a review, not a breakage.
    ended = {"SUCCEEDED", "FAILED (ThresholdConfidenceNotMet)"}
    assert set(figures["status"].values()) <= ended, figures["status"]
    assert figures["build_s"]["cached"] > 0 and figures["up_s"] > 0
    assert figures["first_execution_ms"] > 0 and figures["warm_execution_p50_ms"] > 0
    assert set(figures["image_mb"]) == {"emulator", "model", "deployer", "explorer"}
