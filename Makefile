# The two commands of the README: `make demo` runs the whole story, `make test` runs every test.
# Both create or refresh the project venv (.venv, Python 3.11) and the emulator's own venv.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
# The demo's data source; the official CIFAR-100 URL needs internet (see README).
SOURCE ?=

.PHONY: venv setup demo test

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

test: setup
	$(VENV)/bin/python -m pytest
