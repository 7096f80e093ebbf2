# Sara — developer entry points. `make run` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install browser console-tools postgres prometheus run test check fmt clean bench

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

run: install  ## the whole local stack on embedded defaults (FHIR + reference model + agent)
	$(BIN)/sara up

test: install browser console-tools postgres prometheus  ## the full test suite
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
