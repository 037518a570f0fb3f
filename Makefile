# layerkit — two commands on a fresh machine: `make demo`, then `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
DEMO_OUT ?= demo_out

.PHONY: install demo lint test test-deps test-fast bench clean help

help:
	@echo "make demo     create .venv, install, decompose the shipped astronaut photo into layers"
	@echo "make test     lint, then run the test suite (installs first if needed)"
	@echo "make bench    dev-set benchmark (needs ../shared/data/dev)"

# Idempotent: reinstalls only when pyproject.toml or constraints.txt changed.
install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements-app.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	$(PY) -m pip install -q -c constraints.txt -r requirements-app.txt
	$(PY) -m pip install -q -c constraints.txt --no-deps gradio
	@touch $(STAMP)

# The browser tests drive Debian's chromium (a browser download from elsewhere is not possible);
# apt-get runs only when no chromium is on PATH.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the tests drive: chromium (browser tests of the app), gimp / krita / xvfb
# (the app's PSD and ORA opened in the editors, tests/test_app_editors.py)
TEST_APT := $(if $(shell command -v chromium || command -v chromium-browser),,chromium) \
            $(if $(shell command -v gimp-console || command -v gimp-console-2.10),,gimp) \
            $(if $(shell command -v krita),,krita) $(if $(shell command -v xvfb-run),,xvfb xauth)

test-deps: install
	@if [ -n "$(strip $(TEST_APT))" ]; then \
	  echo "installing $(strip $(TEST_APT)) (apt) for the browser and editor tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(TEST_APT); fi

demo: install
	@rm -rf $(DEMO_OUT)
	$(VENV)/bin/layerkit decompose layerkit/assets/astronaut.png --box 150,15,300,215 -o $(DEMO_OUT)/head --name head --quiet
	$(VENV)/bin/layerkit decompose layerkit/assets/astronaut.png --point 240,330 --point 340,300 -o $(DEMO_OUT)/suit.psd --name suit --quiet
	@echo "layers written to: $(abspath $(DEMO_OUT))/head/ (background.png, foreground.png, alpha.png, layers.json) and $(abspath $(DEMO_OUT))/suit.psd"

# ruff with the project's settings (pyproject.toml [tool.ruff]); `make test` runs it first
lint: install
	$(VENV)/bin/ruff check layerkit tests benchmarks scripts

test: install test-deps lint
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

test-fast: install
	$(VENV)/bin/python -m pytest -q -m "not slow" -p no:cacheprovider

bench: install
	bash benchmarks/run_dev30.sh

clean:
	rm -rf $(DEMO_OUT) build dist *.egg-info .pytest_cache
