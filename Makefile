# A thin Makefile: every target sets up .venv first, so each works on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch, installed before the project so pip never pulls a CUDA build.
# Elsewhere: make setup TORCH="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH ?= torch==2.13.0

.PHONY: setup run test compose-test fuzz lint format bench chaos clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: setup
	$(BIN)/taas migrate
	$(BIN)/taas up

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

clean:
	rm -rf $(VENV) .taas .pytest_cache .mypy_cache .ruff_cache .coverage
