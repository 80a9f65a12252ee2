# Portrait Studio — the commands a developer (and CI) runs. Everything installs into .venv from PyPI.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: setup browser dev demo test lint typecheck template-lint unit integration e2e openapi bench sam-build clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check pip==25.3
	$(PY) -m pip install --quiet --disable-pip-version-check -e . --group test
	# CLIP's BPE vocabulary (tests count prompt tokens with it); the wheel only, without torch.
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps -d $(VENV)/clip open-clip-torch==3.3.0
	rm -f $(VENV)/.installed-* && touch $@

## Debian's chromium for the browser tests (needs root or sudo; without it those tests skip and say so).
browser:
	@test -x /usr/bin/chromium || bash scripts/install_browser.sh || echo "chromium not installed: browser tests will skip"

## Run the whole product locally in the foreground (Ctrl-C stops). PORT=3000 by default.
dev: setup
	$(PY) -m infra.local.stack

## One complete job from the sample selfies on the local stack; results in demo-output/.
demo: setup
	$(PY) -m infra.local.demo

## Everything CI checks: lint, types, template lint, unit, integration and end-to-end tests.
test: setup browser
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy shared/portrait_studio functions
	$(VENV)/bin/cfn-lint template.yaml
	$(PY) -m pytest tests

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

typecheck: setup
	$(PY) -m mypy shared/portrait_studio functions

template-lint: setup
	$(VENV)/bin/cfn-lint template.yaml

unit: setup
	$(PY) -m pytest tests/unit tests/corpus

integration: setup
	$(PY) -m pytest tests/integration

e2e: setup
	$(PY) -m pytest tests/e2e

## Regenerate the committed openapi.json from the API's resolver.
openapi: setup
	$(PY) scripts/openapi.py > openapi.json

bench: setup
	$(PY) -m pip install --quiet --disable-pip-version-check --group bench
	$(PY) benchmarks/pipeline.py
	$(PY) benchmarks/fleet.py
	$(PY) benchmarks/realtime.py
	$(PY) benchmarks/lifecycle.py --examples 20000
	$(PY) benchmarks/normalize.py
	$(PY) benchmarks/identity.py
	$(PY) benchmarks/memory_limit.py

## `sam build` without Docker (in its own venv: the SAM CLI's pins clash with ours).
sam-build:
	bash scripts/sam_build_check.sh

clean:
	rm -rf .aws-sam .local demo-output test-artifacts .pytest_cache .mypy_cache .ruff_cache
