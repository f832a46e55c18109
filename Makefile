# `make demo` and `make test` do all set-up themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST := $(PY) -m pytest -q -p no:cacheprovider
# The read-only fixtures (official outputs, media) beside the checkout.
export VIDEOPRISM_SHARED ?= $(abspath ../shared)

.PHONY: install demo test test-jax test-torch test-tensorflow lint docs docs-check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch first, pinned, so that nothing pulls a CUDA build.
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[jax,torch,tensorflow,apps,test,bench]" "torch==2.13.0"
	touch $(STAMP)

# Debian's Chromium for the page tests (Playwright drives this executable; it downloads none).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m videoprism_keras.demo

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks docs/hooks
	$(PY) -m ruff format --check src tests benchmarks docs/hooks

# The documentation site (docs/ + mkdocs.yml) into site/. `test` builds it with --strict
# into a scratch folder first, so that a broken link or API reference fails the run.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict
docs: $(STAMP)
	$(MKDOCS) -d site

docs-check: $(STAMP)
	@out=$$(mktemp -d) && $(MKDOCS) -d $$out; status=$$?; rm -rf $$out; exit $$status

# Everything once under JAX; the tests that run Keras ops again under PyTorch and TensorFlow.
# The JAX pass runs two test files at a time: most of its time is subprocesses (the CLI,
# Ray, a server, a browser) that leave a core idle. The PyTorch and TensorFlow passes are
# one process each, so they run side by side, one per core; make prints each pass's output
# whole when it ends (--output-sync), and `test` fails if either fails.
test: lint docs-check $(CHROMIUM)
	$(MAKE) --no-print-directory test-jax
	@echo "PyTorch and TensorFlow passes side by side: each prints when it ends"
	$(MAKE) --no-print-directory -j2 --output-sync=target test-torch test-tensorflow

test-jax: $(STAMP) $(CHROMIUM)
	KERAS_BACKEND=jax $(PYTEST) -n 2 --dist loadfile tests

test-torch: $(STAMP)
	KERAS_BACKEND=torch $(PYTEST) -m backend tests

test-tensorflow: $(STAMP)
	KERAS_BACKEND=tensorflow $(PYTEST) -m backend tests

bench: $(STAMP)
	$(PY) benchmarks/speed.py
	$(PY) benchmarks/video_decode.py
	$(PY) benchmarks/index_search.py
	$(PY) benchmarks/preset_load.py
	$(PY) benchmarks/load_memory.py

clean:
	rm -rf $(VENV) build site *.egg-info src/*.egg-info
