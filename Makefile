# The front door. `make help` lists the targets.

PYTHON ?= python3
VENV   ?= .venv

.DEFAULT_GOAL := help
.PHONY: help demo test bench wheels

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  %-8s %s\n", $$1, $$2}'

demo: ## build greenlet-rs, install it into .venv, run examples/demo.py
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install .
	$(VENV)/bin/python examples/demo.py

test: ## every test: Rust, our pytest suites, upstream greenlet's suite (PYTHONS="3.11 3.12 ..." for more CPythons)
	bash tools/test.sh

bench: ## benchmarks against upstream greenlet 3.5.6, side by side (BENCH_ARGS=--quick|--fast)
	$(PYTHON) benchmarks/compare.py $(BENCH_ARGS)

wheels: ## one wheel per CPython into dist/ (PYTHONS="3.11 debian-3.14" to choose)
	bash tools/build-wheels.sh
