"""compose.yaml and the Dockerfiles: the file validates, and everything they name exists.

Static and fast, so it runs with every `make test`, with or without a Docker engine (the images are
built and run by test_compose_e2e.py, `make compose-test`): the Compose file against the Compose
Specification (the JSON schema vendored by check-jsonschema, and compose itself when installed),
then each reference is followed from compose.yaml into the Dockerfiles and the
scripts they install: build contexts, dockerfiles, COPY sources (not hidden by .dockerignore),
executables on the image's PATH, modules run with ``python -m``, the Streamlit app, ``scones``
sub-commands and their options. Nothing is hard-coded: change compose.yaml and the checks follow.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scones import PROJECT_ROOT, config

# ruamel.yaml and the Compose schema come with the dev dependency check-jsonschema.
pytest.importorskip("ruamel.yaml", reason="pip install check-jsonschema (dev dependency)")

COMPOSE_FILE = PROJECT_ROOT / "compose.yaml"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
# PATH of the official python images, before any ENV PATH of ours.
BASE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
PYTHON_RE = re.compile(r"^python(3(\.\d+)?)?$")
SHELLS = ("sh", "bash", "/bin/sh", "/bin/bash")
SHELL_SEPARATORS = {"&&", "||", ";", "|", "&"}
# Host interpolation in compose.yaml: ${VAR}, ${VAR:-default}, ${VAR-default}.
INTERPOLATION_RE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


# ------------------------------ Parsing ------------------------------


def load_compose() -> dict:
    """compose.yaml as plain data (YAML anchors and merge keys resolved)."""
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(COMPOSE_FILE.read_text(encoding="utf-8"))


def interpolate(value: str) -> str:
    """Apply Compose's ${VAR:-default} interpolation with this process's environment."""
    return INTERPOLATION_RE.sub(lambda m: os.environ.get(m[1]) or (m[2] or ""), value)


@dataclass
class Copy:
    """One COPY/ADD: repository sources (absolute host paths) and the destination in the image."""

    sources: list[Path]
    dest: str  # absolute path in the image
    line: int


@dataclass
class Dockerfile:
    """What the checks need from a Dockerfile: its final stage's files, workdir, PATH and CMD."""

    path: Path
    context: Path
    copies: list[Copy] = field(default_factory=list)  # final stage only (what the image holds)
    all_copies: list[Copy] = field(default_factory=list)  # every stage, for source checks
    runs: list[tuple[int, str]] = field(default_factory=list)
    workdir: str = "/"
    env_path: str = BASE_PATH
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None

    def host_path(self, image_path: str) -> Path | None:
        """The repository file that ends up at ``image_path`` in the image, if a COPY puts one."""
        image_path = posixpath.normpath(image_path)
        for copy in reversed(self.copies):  # a later COPY wins
            for src in copy.sources:
                dest = copy.dest
                if len(copy.sources) > 1 or copy.dest.endswith("/") or src.is_dir():
                    dest = copy.dest if src.is_dir() else posixpath.join(copy.dest, src.name)
                dest = posixpath.normpath(dest)
                if image_path == dest:
                    return src
                if src.is_dir() and image_path.startswith(dest + "/"):
                    return src / image_path[len(dest) + 1 :]
        return None

    def which(self, name: str) -> Path | None:
        """The repository file that the image runs for the command ``name``, if we put it there."""
        if "/" in name:
            return self.host_path(posixpath.join(self.workdir, name))
        for folder in self.env_path.split(":"):
            found = self.host_path(posixpath.join(folder, name))
            if found is not None:
                return found
        return None


def _instructions(text: str) -> list[tuple[int, str, str]]:
    """(line number, INSTRUCTION, arguments) with continuations joined and comments dropped."""
    result: list[tuple[int, str, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.partition(" ")
        result.append((start, keyword.upper(), args.strip()))
        buffer = ""
    return result


def _exec_form(args: str) -> list[str]:
    if args.startswith("["):
        return json.loads(args)
    return ["/bin/sh", "-c", args]


def parse_dockerfile(path: Path, context: Path) -> Dockerfile:
    """Parse the instructions scones's Dockerfiles use (FROM, COPY, WORKDIR, ENV, RUN, CMD)."""
    parsed = Dockerfile(path=path, context=context)
    args: dict[str, str] = {}
    for number, keyword, rest in _instructions(path.read_text(encoding="utf-8")):
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":  # a new stage: only the last one is the image
            parsed.copies, parsed.workdir, parsed.env_path = [], "/", BASE_PATH
            parsed.cmd = parsed.entrypoint = None
        elif keyword in ("COPY", "ADD"):
            tokens = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
            flags = [t for t in tokens if t.startswith("--")]
            paths = [t for t in tokens if not t.startswith("--")]
            if any(f.startswith("--from=") for f in flags):
                continue  # from another stage or image, not from the repository
            dest = posixpath.join(parsed.workdir, paths[-1])
            if paths[-1].endswith("/"):
                dest += "/"
            copy = Copy([context / p for p in paths[:-1]], dest, number)
            parsed.copies.append(copy)
            parsed.all_copies.append(copy)
        elif keyword == "WORKDIR":
            parsed.workdir = posixpath.join(parsed.workdir, rest)
        elif keyword == "ENV":
            for token in shlex.split(rest):
                name, _, value = token.partition("=")
                if name == "PATH":
                    parsed.env_path = value.replace("$PATH", parsed.env_path).replace(
                        "${PATH}", parsed.env_path
                    )
        elif keyword == "RUN":
            parsed.runs.append((number, rest))
        elif keyword == "CMD":
            parsed.cmd = _exec_form(rest)
        elif keyword == "ENTRYPOINT":
            parsed.entrypoint = _exec_form(rest)
    return parsed


def dockerignore_patterns() -> list[str]:
    if not DOCKERIGNORE.exists():
        return []
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [ln.strip().lstrip("/") for ln in lines if ln.strip() and not ln.startswith("#")]


def ignored_by_dockerignore(path: Path, context: Path) -> str | None:
    """The .dockerignore pattern that keeps ``path`` out of the build context, if any."""
    relative = path.relative_to(context).as_posix()
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in dockerignore_patterns():
        if pattern.startswith("!"):
            continue  # no exceptions in ours; a real one would need Docker's ordered matching
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern):
                return pattern
            last = prefix.rsplit("/", 1)[-1]
            if pattern.startswith("**/") and fnmatch.fnmatch(last, pattern[3:]):
                return pattern
    return None


# ------------------------------ Command checks ------------------------------


def _simple_commands(text: str) -> list[list[str]]:
    """Split a shell command line into simple commands (on &&, ||, ;, |)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands, current = [], []
    for token in lexer:
        if token in SHELL_SEPARATORS:
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    if current:
        commands.append(current)
    return commands


def _module_in_repo(module: str, image: Dockerfile) -> tuple[bool, Path | None]:
    """Whether ``module``'s top-level package is one we COPY, and the file that runs it if so."""
    top, *rest = module.split(".")
    ours = False
    for copy in image.all_copies:
        for src in copy.sources:
            for base in (src, src / top):  # COPY pkg ./pkg, or COPY dist-dir /opt/dist
                if base.name != top or not (base.is_dir() or base.with_suffix(".py").is_file()):
                    continue
                ours = True
                target = base.joinpath(*rest)
                for candidate in (target / "__main__.py", target.with_suffix(".py")):
                    if candidate.is_file():
                        return True, candidate
    return ours, None


def _importable_outside(module: str) -> bool:
    """A third-party module: importable by this venv or the emulator's venv."""
    if importlib.util.find_spec(module.split(".")[0]) is not None:
        try:
            if importlib.util.find_spec(module) is not None:
                return True
        except ImportError:
            pass
    emulator_python = config.EMULATOR_VENV / "bin" / "python"  # LocalStack's own venv
    if emulator_python.exists():
        probe = f"import importlib.util as u, sys; sys.exit(u.find_spec({module!r}) is None)"
        done = subprocess.run([str(emulator_python), "-c", probe], capture_output=True, timeout=60)
        return done.returncode == 0
    return False


def _scones_command(argv: list[str]) -> list[str]:
    """Problems with `scones SUB --option ...`: the sub-command and its options must exist."""
    import typer

    from scones.cli import app

    group = typer.main.get_command(app)
    sub = argv[1] if len(argv) > 1 else None
    if sub not in group.commands:
        return [f"`scones {sub}` is not a command of the scones CLI ({sorted(group.commands)})"]
    options = {opt for param in group.commands[sub].params for opt in param.opts}
    return [
        f"`scones {sub}` has no option {arg.split('=')[0]}"
        for arg in argv[2:]
        if arg.startswith("--") and arg.split("=")[0] not in options
    ]


def check_command(argv: list[str], image: Dockerfile, seen: set[Path] | None = None) -> list[str]:
    """Every file, script, module or CLI command that ``argv`` (run in ``image``) refers to."""
    seen = set() if seen is None else seen
    while argv and (re.match(r"^\w+=", argv[0]) or argv[0] in ("exec", "env")):
        argv = argv[1:]  # VAR=value prefixes and exec/env wrappers
    if not argv:
        return []
    name = argv[0]
    if name in SHELLS and len(argv) > 2 and argv[1] == "-c":
        return [p for cmd in _simple_commands(argv[2]) for p in check_command(cmd, image, seen)]
    if PYTHON_RE.match(posixpath.basename(name)):
        if "-m" not in argv[:-1]:
            return []
        module = argv[argv.index("-m") + 1]
        ours, main_file = _module_in_repo(module, image)
        if ours:
            return [] if main_file else [f"module {module} (ours) has no file in the repository"]
        if _importable_outside(module):
            return []
        return [
            f"module {module} is neither ours nor importable here or in {config.EMULATOR_VENV} "
            "(run `scones setup` first)"
        ]
    if name == "streamlit" and argv[1:2] == ["run"]:
        script = posixpath.join(image.workdir, argv[2])
        host = image.host_path(script)
        if host is None or not host.is_file():
            return [f"streamlit app {argv[2]} ({script} in the image) is not in the repository"]
        return []
    if name == "scones":
        return _scones_command(argv)
    script = image.which(name)
    if script is None:
        return []  # a system command (pip, ldconfig, ...) of the base image
    if not script.is_file():
        return [f"{name} comes from {script}, which does not exist"]
    if not os.access(script, os.X_OK):
        return [f"{script} is run as a command but is not executable (chmod +x)"]
    if script in seen:
        return []
    seen.add(script)
    return check_script(script, image, seen)


def check_script(script: Path, image: Dockerfile, seen: set[Path]) -> list[str]:
    """A shell script we install: its commands, and absolute paths that a COPY of ours provides."""
    problems: list[str] = []
    for line in script.read_text(encoding="utf-8").splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        for path in re.findall(r"(?<![\w$])(/[\w./-]+)", line):
            host = image.host_path(path)
            if host is not None and not host.exists():
                problems.append(f"{script.name} refers to {path} = {host}, which does not exist")
        if line.startswith("exec ") or re.match(r"^(python\S*|scones|streamlit)\s", line):
            problems += check_command(shlex.split(line), image, seen)
    return problems


# ------------------------------ Collected cases ------------------------------

COMPOSE = load_compose()
SERVICES: dict[str, dict] = COMPOSE["services"]


def _service_build(service: dict) -> tuple[Path, Path] | None:
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    context = (COMPOSE_FILE.parent / interpolate(build.get("context", "."))).resolve()
    return context, context / interpolate(build.get("dockerfile", "Dockerfile"))


BUILDS = {name: _service_build(s) for name, s in SERVICES.items() if "build" in s}
DOCKERFILES = sorted({b for b in BUILDS.values() if b is not None}, key=lambda b: str(b[1]))


def _image_for(name: str) -> Dockerfile:
    build = BUILDS.get(name)
    if build is None:  # image only: the service that builds the same image
        image = SERVICES[name].get("image")
        build = next(BUILDS[n] for n, s in SERVICES.items() if n in BUILDS and s["image"] == image)
    context, dockerfile = build
    return parse_dockerfile(dockerfile, context)


def _rel(path: Path) -> str:
    return path.relative_to(PROJECT_ROOT).as_posix()


# ------------------------------ Tests ------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    """The Compose Specification's JSON schema, as vendored by check-jsonschema."""
    resources = pytest.importorskip(
        "check_jsonschema.builtin_schemas.vendor", reason="pip install check-jsonschema (dev)"
    )
    import importlib.resources

    import jsonschema

    schema_file = importlib.resources.files(resources).joinpath("compose-spec.json")
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(COMPOSE)
    ]
    assert errors == []


def _compose_cli() -> list[str] | None:
    """The compose v2 plugin (`docker compose`), else docker-compose 1.29, else None."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_file_validates_with_docker_compose() -> None:
    """Compose itself parses, interpolates and validates the file (no engine needed)."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip(
            "no compose: `make compose-test` installs it (or apt-get install docker-compose)"
        )
    done = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_ports_bind_to_loopback_only() -> None:
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else port.get("host_ip", "") + ":"
            assert str(published).startswith("127.0.0.1:"), f"{name}: {port} is not loopback-only"


def test_dependencies_wait_for_health_or_completion() -> None:
    """depends_on always has a condition, and the condition is one the dependency can meet."""
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a list"
        for dep, spec in depends.items():
            assert dep in SERVICES, f"{name} depends on unknown service {dep}"
            condition = spec.get("condition")
            if condition == "service_healthy":
                has_check = "healthcheck" in SERVICES[dep] or any(
                    ins == "HEALTHCHECK"
                    for _, ins, _ in _instructions(_image_for(dep).path.read_text())
                )
                assert has_check, f"{name} waits for {dep} to be healthy; {dep} has no healthcheck"
            elif condition == "service_completed_successfully":
                restart = str(SERVICES[dep].get("restart", "no"))
                assert restart == "no", f"{dep} is one-shot but restarts ({restart})"
            else:
                pytest.fail(f"{name} -> {dep}: condition {condition!r} does not wait for anything")


def test_named_volumes_are_declared() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = (volume if isinstance(volume, str) else volume.get("source", "")).split(":")[0]
            if source and not source.startswith(("/", ".", "$", "~")):
                assert source in declared, f"{name}: volume {source} is not declared"


@pytest.mark.parametrize("service", sorted(BUILDS), ids=str)
def test_build_context_and_dockerfile_exist(service: str) -> None:
    context, dockerfile = BUILDS[service]
    assert context.is_dir(), f"{service}: build context {context} is missing"
    assert dockerfile.is_file(), f"{service}: dockerfile {dockerfile} is missing"


@pytest.mark.parametrize("build", DOCKERFILES, ids=lambda b: _rel(b[1]))
def test_copy_sources_exist_and_reach_the_build_context(build: tuple[Path, Path]) -> None:
    context, dockerfile = build
    image = parse_dockerfile(dockerfile, context)
    assert image.all_copies, f"{dockerfile} copies nothing from the repository"
    missing, ignored = [], []
    for copy in image.all_copies:
        for src in copy.sources:
            if not src.exists():
                missing.append(f"line {copy.line}: {_rel(src)}")
            elif pattern := ignored_by_dockerignore(src, context):
                ignored.append(f"line {copy.line}: {_rel(src)} (.dockerignore {pattern})")
    assert missing == [], f"{_rel(dockerfile)} COPYs files not in the repository"
    assert ignored == [], f"{_rel(dockerfile)} COPYs files the build context leaves out"


@pytest.mark.parametrize("build", DOCKERFILES, ids=lambda b: _rel(b[1]))
def test_dockerfile_commands_refer_to_existing_files(build: tuple[Path, Path]) -> None:
    """CMD, ENTRYPOINT and every RUN: their scripts, `python -m` modules and `scones` verbs."""
    context, dockerfile = build
    image = parse_dockerfile(dockerfile, context)
    problems: list[str] = []
    for number, run in image.runs:
        problems += [f"RUN line {number}: {p}" for p in check_command(["sh", "-c", run], image)]
    for argv in (image.entrypoint, image.cmd):
        if argv:
            problems += check_command(argv, image)
    assert problems == []


@pytest.mark.parametrize("service", sorted(SERVICES), ids=str)
def test_service_command_refers_to_existing_files(service: str) -> None:
    """The command each service runs (its own or the image's CMD), followed into scripts."""
    spec = SERVICES[service]
    image = _image_for(service)
    if "working_dir" in spec:
        image.workdir = spec["working_dir"]
    command = spec.get("command", image.cmd)
    if isinstance(command, str):
        command = ["/bin/sh", "-c", command]
    entrypoint = spec.get("entrypoint", image.entrypoint)
    if isinstance(entrypoint, str):
        entrypoint = ["/bin/sh", "-c", entrypoint]
    assert command or entrypoint, f"{service} runs nothing"
    argv = [*(entrypoint or []), *(command or [])]
    assert check_command(argv, image) == []


def test_reference_checks_catch_a_missing_file(tmp_path: Path) -> None:
    """The checker itself: a COPY of a missing file, a missing module and script are reported."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "run.sh").write_text("#!/bin/sh\nexec python -m pkg.gone --x /app/pkg/data\n")
    (tmp_path / "run.sh").chmod(0o755)
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.11-slim\nWORKDIR /app\nCOPY pkg ./pkg\nCOPY missing.txt ./\n"
        'COPY run.sh /usr/local/bin/run\nCMD ["run"]\n'
    )
    image = parse_dockerfile(tmp_path / "Dockerfile", tmp_path)
    assert [s.name for c in image.all_copies for s in c.sources if not s.exists()] == [
        "missing.txt"
    ]
    problems = check_command(image.cmd, image)
    assert any("pkg.gone" in p for p in problems), problems
    assert any("/app/pkg/data" in p for p in problems), problems
    assert check_command(["streamlit", "run", "pkg/app.py"], image) != []
    assert check_command(["python", "-m", "pkg"], image) != []  # a package without __main__.py
    assert check_command(["scones", "no-such-verb"], image) != []
