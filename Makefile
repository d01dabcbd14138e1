# The front-door commands: `make run` and `make test` (see README.md); `make test-fast` is the
# developer's loop: unit and in-process tests on SQLite, no servers, no PostgreSQL.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast venv lint openapi bench bench-crl

$(BIN)/ca-service: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/ca-service

# the service's home is ./var of the checkout unless CA_SERVICE_HOME names another
run: venv
	CA_SERVICE_HOME="$${CA_SERVICE_HOME:-$(CURDIR)/var}" $(BIN)/ca-service serve

lint: venv
	$(BIN)/ruff check ca_service tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

test: venv
	scripts/system-deps.sh
	$(BIN)/ruff check ca_service tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# what `make test` runs less the tests marked slow (servers, subprocesses) or postgres
test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow and not postgres"

openapi: venv
	CA_SERVICE_HOME=$$(mktemp -d) $(BIN)/ca-service openapi --out openapi/openapi.json

bench: venv
	$(BIN)/python bench/issue_rate.py
	$(BIN)/python bench/provisioning.py
	$(BIN)/python bench/keystore.py
	$(BIN)/python bench/trust_bundle.py
	$(BIN)/python bench/acme.py

bench-crl: venv
	$(BIN)/python bench/crl.py
