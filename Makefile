# The README's two commands are `make run` and `make test`; the rest are for developers.
SHELL := /bin/bash
PY := .venv/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test venv system lint format check-migrations test-fast bench

run: venv  ## install everything, migrate, start the studio on http://127.0.0.1:8000
	$(PY) -m app

test: system venv lint  ## install everything (apt packages too) and run every test but the GPU ones
	STUDIO_REQUIRE_POSTGRES=1 STUDIO_REQUIRE_BROWSER=1 $(PY) -m pytest -m "not gpu" -n 2 --dist loadgroup --durations=40

venv:
	@scripts/bootstrap.sh

system:
	@scripts/system-packages.sh

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test-fast: venv  ## everything but browser, slow and postgres tests
	$(PY) -m pytest -m "not gpu and not browser and not slow and not postgres" -n 2

bench: venv
	$(PY) benchmarks/run_all.py
