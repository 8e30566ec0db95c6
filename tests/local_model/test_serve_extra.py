"""The model server runs with only pyproject's base and `serve` extra: what the model image holds.

Every module of an installed distribution outside that set (typer, pydantic-settings, streamlit,
matplotlib, torch, ...) and our other packages (scones, cloud, streamlit_app) are made
unimportable in the server's process; it must still start and answer an invocation.
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys
import tomllib
import urllib.request
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.events import png_bytes
from tests.support.server import start_server

ROOT = Path(__file__).resolve().parents[2]
OURS_ABOVE = ("scones", "cloud", "streamlit_app")  # what local_model must never need
BLOCKER = """
import importlib.abc, runpy, sys
BLOCKED = set(sys.argv[1].split(","))
class Outside(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is not in the serve extra", name=name)
sys.meta_path.insert(0, Outside())
sys.argv = ["local_model.serve", *sys.argv[2:]]
runpy.run_module("local_model.serve", run_name="__main__", alter_sys=True)
"""


def serve_closure() -> set[str]:
    """The distributions pyproject's base + `serve` extra pull in, transitively."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    todo += [Requirement(r) for r in project["optional-dependencies"]["serve"]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(req.name) or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in req.extras):
                todo.append(sub)
            elif sub.marker.evaluate({"extra": ""}):
                todo.append(sub)
    return seen


def blocked_modules() -> list[str]:
    """Top-level modules that only distributions outside the serve closure provide."""
    allowed = serve_closure()
    blocked = {
        module
        for module, dists in metadata.packages_distributions().items()
        if not any(canonicalize_name(d) in allowed for d in dists)
        and module not in sys.stdlib_module_names
        and module.isidentifier()
    }
    return sorted((blocked - {"local_model"}) | set(OURS_ABOVE))


def test_blocker_really_blocks_what_the_cli_needs():
    """The list holds the CLI's and explorer's libraries, so the next test can fail."""
    blocked = set(blocked_modules())
    assert {"scones", "typer", "pydantic_settings", "streamlit", "matplotlib"} <= blocked
    assert not {"onnxruntime", "fastapi", "uvicorn", "numpy", "PIL", "boto3"} & blocked


def test_server_starts_and_answers_with_only_the_serve_extra(tiny_model_dir, tmp_path):
    script = tmp_path / "serve_extra_only.py"
    script.write_text(BLOCKER)
    launcher = [sys.executable, str(script), ",".join(blocked_modules())]
    server = start_server(
        tiny_model_dir, tmp_path / "server.log", ["--no-capture"], launcher=launcher
    )
    try:
        request = urllib.request.Request(
            server.url + "/invocations", data=png_bytes(), headers={"Content-Type": "image/png"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert len(response.read()) > 2
    finally:
        server.stop()
    log = server.log_text()
    assert "is not in the serve extra" not in log and "Application shutdown complete" in log, log
