"""Python Lambda runtimes: an interpreter per python3.X plus a venv with awslambdaric and boto3.

AWS's python3.X images ship the interpreter, the runtime interface client (awslambdaric) and boto3.
We mirror that with one small venv per minor version, built from an interpreter found on this
machine (pyenv or ``python3.X`` on PATH), so a function sees neither LocalStack's packages nor the
machine's global site-packages. Build them at setup time (needs PyPI once)::

    python -m scones_emulator.runtimes install 3.11 3.12 3.13
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

LOG = logging.getLogger(__name__)

# default: <LocalStack venv>/lambda-runtimes. One venv per Python minor version lives here.
RUNTIMES_DIR = Path(
    os.environ.get("SCONES_LAMBDA_RUNTIMES_DIR") or Path(sys.prefix) / "lambda-runtimes"
)
# What AWS's python images carry besides the standard library: the runtime client and the SDK.
RUNTIME_PACKAGES = ("awslambdaric", "boto3")
# Written last by an install; a runtime dir without it is a broken or half-finished install.
MARKER = ".scones-runtime.json"
# The Python runtimes AWS Lambda offers (python3.9 ... python3.14)
LAMBDA_PYTHON_VERSIONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
PIP_TIMEOUT_S = 600  # a cold pip download of boto3 + awslambdaric takes ~10-30 s here

_RUNTIME_RE = re.compile(r"^python(3\.\d+)$")
_INSTALL_LOCKS: dict[str, threading.Lock] = {}
_INSTALL_LOCKS_GUARD = threading.Lock()


class RuntimeUnavailable(Exception):
    """No usable Python runtime for a Lambda function (unsupported runtime or failed install)."""


@dataclass(frozen=True)
class PythonRuntime:
    """A ready runtime venv: its interpreter runs ``-m awslambdaric`` with boto3 importable."""

    version: str  # "3.12"
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"


def runtime_version(runtime: str | None) -> str:
    """Map a Lambda runtime name to a Python minor version: ``python3.12`` -> ``3.12``."""
    match = _RUNTIME_RE.match(runtime or "")
    if not match:
        raise RuntimeUnavailable(
            f"runtime {runtime!r} is not supported by the scones Lambda executor; "
            "use a python3.X runtime with a zip package"
        )
    return match.group(1)


def _version_key(path: str) -> tuple[int, ...]:
    name = Path(path).name
    return tuple(int(part) for part in name.split("."))


def find_interpreter(version: str) -> Path | None:
    """Find a CPython ``version`` (e.g. "3.12") on this machine: pyenv first, then PATH."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    # Only plain X.Y.Z dirs: skips free-threaded "3.13.0t", "-dev" builds and venvs inside pyenv.
    candidates = [
        path
        for path in glob.glob(str(pyenv_root / "versions" / f"{version}.*"))
        if re.fullmatch(rf"{re.escape(version)}\.\d+", Path(path).name)
    ]
    for path in sorted(candidates, key=_version_key, reverse=True):
        python = Path(path) / "bin" / "python3"
        if python.exists():
            return python
    # pyenv shims are skipped: they are slow and fail when the version is not selected.
    search_path = os.pathsep.join(
        entry for entry in os.environ.get("PATH", "").split(os.pathsep) if "/shims" not in entry
    )
    found = shutil.which(f"python{version}", path=search_path + os.pathsep + "/usr/bin")
    return Path(found) if found else None


def own_interpreter() -> tuple[str, Path]:
    """The emulator's own base interpreter (not its venv, so LocalStack's packages stay out)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = getattr(sys, "_base_executable", None) or sys.executable
    return version, Path(os.path.realpath(base))


def interpreter_for(runtime: str | None) -> tuple[str, Path]:
    """The (version, interpreter) a function with this Lambda runtime runs under."""
    version = runtime_version(runtime)
    interpreter = find_interpreter(version)
    if interpreter is not None:
        return version, interpreter
    own_version, own = own_interpreter()
    LOG.warning(
        "no Python %s on this machine for Lambda runtime %s; running it under Python %s (%s)",
        version,
        runtime,
        own_version,
        own,
    )
    return own_version, own


def runtime_root(version: str) -> Path:
    return RUNTIMES_DIR / version


def existing_runtime(version: str) -> PythonRuntime | None:
    """The installed runtime for ``version`` if it is complete and its interpreter still exists."""
    runtime = PythonRuntime(version, runtime_root(version))
    if (runtime.root / MARKER).exists() and runtime.python.exists():
        return runtime
    return None


def _lock_for(version: str) -> threading.Lock:
    with _INSTALL_LOCKS_GUARD:
        return _INSTALL_LOCKS.setdefault(version, threading.Lock())


def ensure_runtime(version: str, interpreter: Path, install: bool = True) -> PythonRuntime:
    """Return the runtime venv for ``version``, building it (needs PyPI) when missing."""
    runtime = existing_runtime(version)
    if runtime is not None:
        return runtime
    if not install:
        raise RuntimeUnavailable(
            f"no Lambda runtime for Python {version} in {RUNTIMES_DIR}; run "
            f"`{sys.executable} -m scones_emulator.runtimes install {version}`"
        )
    with _lock_for(version):
        return existing_runtime(version) or install_runtime(version, interpreter)


def install_runtime(version: str, interpreter: Path) -> PythonRuntime:
    """Build ``<RUNTIMES_DIR>/<version>``: a venv of ``interpreter`` plus awslambdaric and boto3.

    Built in a temporary sibling and renamed into place, so two emulators installing at once
    never see a half-built runtime.
    """
    RUNTIMES_DIR.mkdir(parents=True, exist_ok=True)
    final = runtime_root(version)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=RUNTIMES_DIR))
    LOG.info("building Lambda runtime for Python %s from %s in %s", version, interpreter, final)
    try:
        # --without-pip: ensurepip costs seconds; our own pip installs into the venv instead.
        _run([str(interpreter), "-m", "venv", "--without-pip", "--clear", str(staging)], version)
        site = staging / "lib" / f"python{version}" / "site-packages"
        if not site.is_dir():
            raise RuntimeUnavailable(
                f"{interpreter} is not Python {version} (no {site}); "
                f"set PYENV_ROOT or put python{version} on PATH"
            )
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "--target",
                str(site),
                "--python-version",
                version,
                "--implementation",
                "cp",
                "--only-binary=:all:",  # required by --python-version; awslambdaric ships wheels
                *RUNTIME_PACKAGES,
            ],
            version,
        )
        (staging / MARKER).write_text(
            json.dumps({"version": version, "interpreter": str(interpreter)}) + "\n"
        )
        if final.exists() and existing_runtime(version) is None:
            shutil.rmtree(final, ignore_errors=True)  # a broken earlier install
        try:
            staging.rename(final)
        except OSError:
            if existing_runtime(version) is None:
                raise
            # another process finished the same install first: keep theirs
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    runtime = existing_runtime(version)
    if runtime is None:
        raise RuntimeUnavailable(f"installing the Python {version} Lambda runtime left no {final}")
    return runtime


def _run(argv: list[str], version: str) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.CalledProcessError as err:
        raise RuntimeUnavailable(
            f"`{' '.join(argv[:4])} ...` failed (exit {err.returncode}): "
            f"{(err.stderr or err.stdout).strip()[-800:]}; the Lambda runtime needs PyPI once: "
            f"run `{sys.executable} -m scones_emulator.runtimes install {version}` while online"
        ) from err
    except subprocess.TimeoutExpired as err:
        raise RuntimeUnavailable(
            f"`{' '.join(argv[:4])} ...` took over {PIP_TIMEOUT_S} s; is PyPI reachable?"
        ) from err


def main(argv: list[str] | None = None) -> int:
    """CLI: ``install [3.11 3.12 ...]`` builds runtimes; ``list`` shows what is installed."""
    parser = argparse.ArgumentParser(prog="python -m scones_emulator.runtimes", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    install = sub.add_parser("install", help="build the runtime venv for each Python version")
    install.add_argument(
        "versions",
        nargs="*",
        help="Python minor versions, e.g. 3.12 (default: every Lambda Python found here)",
    )
    install.add_argument(
        "--force", action="store_true", help="rebuild even when the runtime already exists"
    )
    sub.add_parser("list", help="show installed runtimes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.command == "list":
        for root in sorted(RUNTIMES_DIR.glob("3.*")):
            state = "ok" if existing_runtime(root.name) else "broken"
            print(f"{root.name}\t{state}\t{root}")
        return 0

    versions = [version.removeprefix("python") for version in args.versions]
    best_effort = not versions
    if best_effort:
        versions = [v for v in LAMBDA_PYTHON_VERSIONS if find_interpreter(v) is not None]
        print(f"Lambda Pythons on this machine: {' '.join(versions) or 'none'}")
    failed = 0
    for version in versions:
        try:
            found_version, interpreter = interpreter_for(f"python{version}")
            if found_version != version:
                raise RuntimeUnavailable(f"no Python {version} interpreter on this machine")
            if args.force and runtime_root(version).exists():
                shutil.rmtree(runtime_root(version))
            runtime = ensure_runtime(version, interpreter)
            print(f"python{version}: {runtime.root} ({interpreter})")
        except RuntimeUnavailable as err:
            print(f"python{version}: FAILED: {err}", file=sys.stderr)
            failed += 1
    if best_effort:  # setup goes on as long as some runtime exists; the rest fail at create
        return 1 if failed == len(versions) else 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
