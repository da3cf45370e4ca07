# A thin Makefile: every target sets up .venv first, so each works on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch, installed before the project so pip never pulls a CUDA build.
# Elsewhere: make setup TORCH="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH ?= torch==2.13.0

.PHONY: setup run test compose-test fuzz lint format bench chaos screenshots clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# `make run PORT=8001 HOST=0.0.0.0`; `taas up` upgrades the database itself.
HOST ?= 127.0.0.1
PORT ?= 8000
run: setup
	$(BIN)/taas up --host $(HOST) --port $(PORT)

test: lint
	$(BIN)/python -m pytest --cov=app --cov=worker --cov-report=term:skip-covered

# The docker compose stack built, started and training (tests/e2e/test_compose.py); it
# starts dockerd and makes its Debian base image itself. `make test` runs it under CI=true.
compose-test: setup
	CI=true $(BIN)/python -m pytest tests/e2e/test_compose.py

# The schema fuzzer at length: `make test` runs it with a few examples per operation.
FUZZ_EXAMPLES ?= 200
fuzz: setup
	TAAS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/api/test_openapi_fuzz.py

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy app worker

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python -m benchmarks

# Randomized faults against real workers (Postgres + Redis): benchmarks/results/chaos.json.
chaos: setup
	$(BIN)/python -m benchmarks chaos

# The README's pictures of the dashboard, from a real run in Chromium: docs/screenshots/.
screenshots: setup
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) .taas .pytest_cache .mypy_cache .ruff_cache .coverage
