# `make demo` and `make test` do all set-up themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest -q -p no:cacheprovider
# The read-only fixtures (official outputs, media) beside the checkout.
export VIDEOPRISM_SHARED ?= $(abspath ../shared)

# The exact versions `make test` passed with: every install below takes them (`-c`), so that
# an upstream release cannot break the build overnight. Updated on purpose: `make constraints`.
CONSTRAINTS := constraints.txt
PIP := -m pip install -c $(CONSTRAINTS)

# `make demo` installs only what the demo runs (its own stamp); `make install` and `make test`
# add the rest (a second stamp).
DEMO_EXTRAS := jax,video,text,hub,plot
ALL_EXTRAS := jax,torch,tensorflow,cli,serve,ray,export,shots,test,bench,docs
DEMO_STAMP := $(VENV)/.demo-installed
STAMP := $(VENV)/.installed

# A second environment with `[jax]` only: tests/test_extras.py runs the CLI in it to check that
# each command names the extra it needs (VIDEOPRISM_JAX_ONLY_PYTHON tells the test where it is).
JAX_VENV := .venv-jax
JAX_STAMP := $(JAX_VENV)/.installed
JAX_ONLY_PYTHON := $(abspath $(JAX_VENV))/bin/python

.PHONY: install demo test test-jax test-torch test-tensorflow lint docs docs-check bench constraints clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(DEMO_STAMP): pyproject.toml $(CONSTRAINTS) | $(PY)
	@echo "Installing what the demo needs into $(VENV): JAX, Keras, PyAV, SentencePiece,"\
	      "matplotlib (220 MB to download, 1 GB installed; about a minute on a fresh machine here)"
	$(PY) $(PIP) -e ".[$(DEMO_EXTRAS)]"
	touch $@

$(STAMP): $(DEMO_STAMP)
	@echo "Installing the rest for the tests into $(VENV): PyTorch, TensorFlow, Ray, the"\
	      "exporters (about 5 GB; 10 minutes on a fresh machine)"
	# The CPU build of torch first, pinned, so that nothing pulls a CUDA build.
	$(PY) $(PIP) "torch==2.13.0"
	$(PY) $(PIP) -e ".[$(ALL_EXTRAS)]" "torch==2.13.0"
	touch $@

$(JAX_STAMP): pyproject.toml $(CONSTRAINTS)
	@echo "Installing videoprism-keras[jax] alone into $(JAX_VENV) (about 1 minute)"
	$(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/python $(PIP) -q -e ".[jax]"
	touch $@

# constraints.txt ← the versions now in .venv (minus this package). Updated on purpose, never
# by an install: upgrade .venv, run `make test`, then this. torch's local label (+cpu) is
# dropped so that the pin reads on any index.
constraints: $(STAMP)
	{ echo "# Exact versions of a passing make test. Regenerate on purpose: make constraints"; \
	  $(PY) -m pip freeze --exclude-editable | sed -e 's/+cpu$$//'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	touch -c $(DEMO_STAMP) $(STAMP) $(JAX_STAMP)

# Debian's Chromium for the page tests (Playwright drives this executable; it downloads none).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium

install: $(STAMP)

demo: $(DEMO_STAMP)
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

test-jax: $(STAMP) $(JAX_STAMP) $(CHROMIUM)
	VIDEOPRISM_JAX_ONLY_PYTHON=$(JAX_ONLY_PYTHON) KERAS_BACKEND=jax $(PYTEST) -n 2 --dist loadfile tests

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
	rm -rf $(VENV) $(JAX_VENV) build site *.egg-info src/*.egg-info
