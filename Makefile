# `make bench` runs the benchmarks, `make test` the tests; each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: bench sweep test lint format report clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	touch $(STAMP)

bench: $(STAMP)
	$(PY) -m pytest --benchmark-only $(ARGS)

sweep: $(STAMP)
	$(PY) -m benchmarks.sweep $(ARGS)

test: $(STAMP) lint
	$(PY) -m pytest tests --benchmark-skip -n auto --dist loadfile $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

report: $(STAMP)
	$(PY) -m benchmarks.report $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
