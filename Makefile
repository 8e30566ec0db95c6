# The two commands of the README: `make demo` runs the whole story, `make test` runs every test.
# Both create or refresh the project venv (.venv, Python 3.11) and the emulator's own venv.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
# The demo's data source; the official CIFAR-100 URL needs internet (see README).
SOURCE ?=

.PHONY: venv setup browser demo test compose-test

venv: $(VENV)/.installed

# torch is pinned in pyproject.toml's `train` extra: a bare `torch` would pull a CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[train,dev]'
	touch $@

setup: venv
	$(VENV)/bin/scones setup

demo: setup
	$(VENV)/bin/scones demo $(if $(SOURCE),--source $(SOURCE))

# The explorer's test drives Debian's chromium headless (nothing downloaded); needs root to install.
browser:
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
		echo "chromium missing and not root: the explorer's browser test will be skipped"

# lint-imports: the layer contracts of pyproject.toml (an upward import fails here, before pytest).
test: setup browser
	PYTHONPATH=docker/scones_emulator $(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/python -m pytest

# `docker compose up` end to end, from a copy of the repository without the development data
# beside it: installs Docker and the compose plugin when missing (root), starts dockerd, builds
# the stand-in python bases only where Docker Hub cannot be reached (test infrastructure), then
# the test.
compose-test: setup browser
	bash tests/docker/install_docker.sh
	bash tests/docker/standin_bases.sh
	SCONES_COMPOSE_TEST=1 $(VENV)/bin/python -m pytest tests/docker/test_compose_e2e.py
