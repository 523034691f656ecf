# The front door. `make help` lists the targets.

PYTHON   ?= python3
VENV     ?= .venv
DEV_VENV ?= .venv-dev

.DEFAULT_GOAL := help
.PHONY: help demo build-dev lint test-rust test-py test test-aarch64 stress bench wheels

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  %-13s %s\n", $$1, $$2}'

demo: ## build greenlet-rs, install it into .venv, run examples/demo.py
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install .
	$(VENV)/bin/python examples/demo.py

build-dev: ## debug build (debug assertions) into .venv-dev with maturin develop; offline once set up
	test -x $(DEV_VENV)/bin/python || $(PYTHON) -m venv $(DEV_VENV)
	test -x $(DEV_VENV)/bin/maturin || $(DEV_VENV)/bin/pip install 'maturin>=1.16,<2' pytest
	VIRTUAL_ENV=$(abspath $(DEV_VENV)) $(DEV_VENV)/bin/maturin develop --profile dev
	@echo "installed a debug build into $(DEV_VENV): $(DEV_VENV)/bin/python -m pytest tests/python"

lint: ## rustfmt --check, clippy -D warnings (every unsafe block documented), rustdoc -D warnings
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings -D clippy::undocumented_unsafe_blocks
	RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps

test-rust: ## greenlet-core's Rust tests, debug and release
	cargo test -p greenlet-core
	cargo test --release -p greenlet-core

test-py: ## the Python suites on one interpreter (PYTHON=python3.12, a path, 3.13 or debian-3.14)
	PYTHONS="$(PYTHON)" RUST_TESTS=0 CLIENTS=none bash tools/test.sh

test: ## every test on every CPython found; names the ones of the matrix it skipped (PYTHONS="3.11 debian-3.14" to choose)
	bash tools/test.sh

AARCH64_PYTHONS ?= 3.11 3.14
test-aarch64: ## the Python suites on Debian's arm64 CPythons under qemu-user (AARCH64_PYTHONS="3.11 3.13 3.14"); installs qemu and the cross gcc as root
	PYTHONS="$(addprefix aarch64-,$(AARCH64_PYTHONS))" RUST_TESTS=0 CLIENTS=none bash tools/test.sh

STRESS_OPS ?= 1000000
stress: ## long stress run (STRESS_OPS=1000000 random operations, threads and signals) on PYTHON, built into .venv-stress-<name>
	test -x .venv-stress-$(notdir $(PYTHON))/bin/python || $(PYTHON) -m venv .venv-stress-$(notdir $(PYTHON))
	.venv-stress-$(notdir $(PYTHON))/bin/pip install -q .
	.venv-stress-$(notdir $(PYTHON))/bin/python tests/stress/run.py --seed 1 --ops $(STRESS_OPS) --ops-per-seed 10000 --threads --signals --jobs 2

bench: ## benchmarks against upstream greenlet 3.5.6, side by side (BENCH_ARGS=--quick|--fast)
	$(PYTHON) benchmarks/compare.py $(BENCH_ARGS)

wheels: ## manylinux_2_28 wheels, x86_64 and aarch64, one per CPython into dist/ (PYTHONS="3.11 debian-3.14", ARCHS=x86_64 to choose)
	bash tools/build-wheels.sh

.PHONY: cross-check
cross-check: ## Windows x64 (core tests under wine, greenlet-py checked) and macOS (checked, not run); into target/cross
	bash tools/cross-check.sh
