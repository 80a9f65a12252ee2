# Portrait Studio — the commands a developer (and CI) runs. Everything installs into .venv from PyPI.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements-dev.lock requirements-uv.lock | sha256sum | cut -c1-12)
CLIP_VERSION := 3.3.0
CLIP_SHA256 := c549ad5ed6bfc119cc11105033c0a2b9d7a2a4afeb40a58a09aab3da1a0043ce
# checkov pins boto3 1.35 (we pin 1.44), so it lives in its own venv, installed from a hashed lock.
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cat requirements-checkov.lock | sha256sum | cut -c1-12)
# uv installs the locks (3x faster than pip, compiling the bytecode included: 17 s against 49 s for the dev lock on
# the 2-core machine, hashes checked alike) and resolves them for targets other than this machine (the layer: cp312
# aarch64). uv itself comes from requirements-uv.lock, hashed, through the venv's own pip.
UV_VERSION := 0.13.9
UV := $(VENV)/bin/uv

.PHONY: setup bytecode browser dev demo test lint typecheck template-lint checkov unit integration e2e openapi bench sam-build \
	lock clean

setup: $(STAMP)

# Every process the stack and the tests start (a stack, each function's workers, each pytest worker) imports our
# code and its dependencies. Without bytecode on disk each of them compiles every module it imports, again (about
# 2.5 CPU s more per function worker: 0.8 s against 3.3 to import collect's modules), and where
# PYTHONDONTWRITEBYTECODE is set (as on the CI machine) nothing ever writes it. So the dependencies are compiled at
# install (--compile-bytecode) and our own code here, before anything runs (only what changed is compiled again).
bytecode: setup
	$(PY) -m compileall -q -j 0 shared functions infra tests scripts benchmarks

$(UV): requirements-uv.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-uv.lock
	touch $@

$(STAMP): pyproject.toml requirements-dev.lock $(UV)
	# Runtime + test dependencies at the versions and hashes of requirements-dev.lock (`make lock`), so no
	# transitive version floats; then the project itself (editable: no artifact to hash), adding nothing.
	$(UV) pip install --quiet --python $(PY) --require-hashes --compile-bytecode -r requirements-dev.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	# CLIP's BPE vocabulary (tests count prompt tokens with it); the wheel only, without torch, checked by sha256.
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps -d $(VENV)/clip open-clip-torch==$(CLIP_VERSION)
	echo "$(CLIP_SHA256)  $(VENV)/clip/open_clip_torch-$(CLIP_VERSION)-py3-none-any.whl" | sha256sum --check --strict -
	rm -f $(VENV)/.installed-* && touch $@

## Debian's chromium for the browser tests (needs root or sudo; without it those tests skip and say so).
browser:
	@test -x /usr/bin/chromium || bash scripts/install_browser.sh || echo "chromium not installed: browser tests will skip"

## Run the whole product locally in the foreground (Ctrl-C stops). PORT=3000 by default.
dev: bytecode
	$(PY) -m infra.local.stack

## One complete job from the sample selfies on the local stack; results in demo-output/.
demo: bytecode
	$(PY) -m infra.local.demo

# Test files run side by side, each file whole in one worker (its module-scoped local stack too): tests in a file
# may share a stack, files never do (each stack is its own processes on free ports). Two workers more than cores:
# the end-to-end tests spend much of their time waiting (timers, the emulators' pace), which the extra workers fill
# (2-core machine, fresh-clone CI: 3 workers pytest 12:05, 4 workers 10:35, 5 workers 11:10; docs/development.md).
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 2 )))
PYTEST_PARALLEL ?= -n $(PYTEST_WORKERS) --dist loadfile

## Everything CI checks: lint, types, template lint and security scan (checkov), unit, integration and end-to-end tests.
test: bytecode browser $(CHECKOV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy shared/portrait_studio functions infra/local
	$(VENV)/bin/cfn-lint template.yaml
	$(CHECKOV_VENV)/bin/checkov $(CHECKOV_FLAGS)
	$(PY) -m pytest tests $(PYTEST_PARALLEL)

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

typecheck: setup
	$(PY) -m mypy shared/portrait_studio functions infra/local

template-lint: setup
	$(VENV)/bin/cfn-lint template.yaml

## Security scan of the template; each skipped check is a `# checkov:skip=ID: reason` on its resource.
CHECKOV_FLAGS = -f template.yaml --framework cloudformation --quiet --compact --skip-download

checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov $(CHECKOV_FLAGS)

$(CHECKOV_STAMP): requirements-checkov.lock $(UV)
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(UV) pip install --quiet --python $(CHECKOV_VENV)/bin/python --require-hashes --compile-bytecode \
		-r requirements-checkov.lock
	rm -f $(CHECKOV_VENV)/.installed-* && touch $@

unit: bytecode
	$(PY) -m pytest tests/unit tests/corpus $(PYTEST_PARALLEL)

integration: bytecode
	$(PY) -m pytest tests/integration $(PYTEST_PARALLEL)

e2e: bytecode
	$(PY) -m pytest tests/e2e $(PYTEST_PARALLEL)

## Regenerate the committed openapi.json from the API's resolver.
openapi: setup
	$(PY) scripts/openapi.py > openapi.json

bench: setup
	$(UV) pip install --quiet --python $(PY) --group bench
	$(PY) benchmarks/pipeline.py
	$(PY) benchmarks/job_cpu.py
	$(PY) benchmarks/cold_start.py
	$(PY) benchmarks/fleet.py
	$(PY) benchmarks/more_like_this.py
	$(PY) benchmarks/realtime.py
	$(PY) benchmarks/lifecycle.py --examples 20000
	$(PY) benchmarks/normalize.py
	$(PY) benchmarks/identity.py
	$(PY) benchmarks/memory_limit.py

## `sam build` without Docker (in its own venv: the SAM CLI's pins clash with ours).
sam-build:
	bash scripts/sam_build_check.sh

## Regenerate the hashed locks: the DepsLayer's (Lambda: CPython 3.12, manylinux aarch64) from
## layers/deps/requirements.txt; the dev environment's (.venv: runtime + test group) and checkov's (its group)
## from pyproject.toml, and uv's own (UV_VERSION), all for any platform with Python >= 3.11.
## Existing pins are kept unless a top-level pin changed; `make lock UPGRADE=--upgrade` moves everything.
lock: $(UV)
	echo "uv==$(UV_VERSION)" | $(UV) pip compile --quiet $(UPGRADE) - --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command "make lock" -o requirements-uv.lock
	cd layers/deps && ../../$(UV) pip compile --quiet $(UPGRADE) requirements.txt \
		--python-version 3.12 --python-platform aarch64-manylinux_2_28 --only-binary :all: \
		--generate-hashes --custom-compile-command "make lock" -o requirements.lock
	$(UV) pip compile --quiet $(UPGRADE) pyproject.toml --group test --universal \
		--python-version 3.11 --generate-hashes --custom-compile-command "make lock" -o requirements-dev.lock
	$(UV) pip compile --quiet $(UPGRADE) --group pyproject.toml:checkov --universal \
		--python-version 3.11 --generate-hashes --custom-compile-command "make lock" -o requirements-checkov.lock

clean:
	rm -rf .aws-sam .local demo-output test-artifacts .pytest_cache .mypy_cache .ruff_cache
