# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check pytest install clean packages golden peer browser deploy-schema bulk-client

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres]'
	touch $(STAMP)

install: $(STAMP)

## Set everything up on the embedded SQLite default and serve the example case
## (on another port: PORT=8001 make demo).
PORT ?= 8000

demo: $(STAMP)
	$(BIN)/fhir-service demo --port $(PORT)

## The whole test suite: lint, types, layering, then pytest.
test: $(STAMP) check pytest

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

pytest: $(STAMP) packages peer browser deploy-schema bulk-client
	$(BIN)/pytest

## FHIR packages (R4 core, mCODE and what of its dependencies can be had) in the package cache.
PACKAGES_STAMP := $(VENV)/.fhir-packages

packages: $(PACKAGES_STAMP)

$(PACKAGES_STAMP): $(STAMP)
	$(BIN)/fhir-service packages install
	touch $(PACKAGES_STAMP)

## Regenerate the reviewed golden bundles of the example case (review the diff!).
golden: $(STAMP)
	$(BIN)/fhir-service map examples/ivc-leiomyosarcoma/case.yaml --anchor-date 2022-03-01 \
		--bundle-type transaction -o examples/ivc-leiomyosarcoma/bundle-transaction.json
	$(BIN)/fhir-service map examples/ivc-leiomyosarcoma/case.yaml --anchor-date 2022-03-01 \
		--bundle-type collection -o examples/ivc-leiomyosarcoma/bundle-collection.json

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

## The Compose specification's JSON schema, to check compose.yaml (tests/deploy).
DEPLOY_STAMP := tests/deploy/node_modules/.installed

deploy-schema: $(DEPLOY_STAMP)

$(DEPLOY_STAMP): tests/deploy/package-lock.json
	cd tests/deploy && npm ci --no-audit --no-fund
	touch $(DEPLOY_STAMP)

## The external FHIR server of the sync tests (tests/peer; npm packages pinned by its lock file),
## and the current Medplum router it also runs (tests/peer/medplum-5, pinned by its own lock file).
PEER_STAMP := tests/peer/node_modules/.installed
PEER5_STAMP := tests/peer/medplum-5/node_modules/.installed

peer: $(PEER_STAMP) $(PEER5_STAMP)

$(PEER_STAMP): tests/peer/package-lock.json
	cd tests/peer && npm ci --no-audit --no-fund
	touch $(PEER_STAMP)

$(PEER5_STAMP): tests/peer/medplum-5/package-lock.json
	cd tests/peer/medplum-5 && npm ci --no-audit --no-fund
	touch $(PEER5_STAMP)

## A real Bulk Data client (smart-fetch) for the export round trip (tests/export), pinned by
## its requirements file, in a virtualenv of its own so the project's stays lean.
BULK_CLIENT := tests/export/bulk_client/.venv
BULK_CLIENT_STAMP := $(BULK_CLIENT)/.installed

bulk-client: $(BULK_CLIENT_STAMP)

$(BULK_CLIENT_STAMP): tests/export/bulk_client/requirements.txt
	$(PYTHON) -m venv $(BULK_CLIENT)
	$(BULK_CLIENT)/bin/pip install --quiet -r tests/export/bulk_client/requirements.txt
	touch $(BULK_CLIENT_STAMP)

## Debian's Chromium for the browser tests (tests/ui), installed when /usr/bin/chromium is
## missing. Without it the browser tests fail when CI=true and skip elsewhere.
CHROMIUM := /usr/bin/chromium

browser:
	@if [ ! -x $(CHROMIUM) ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		{ $$SUDO apt-get update && $$SUDO apt-get install -y chromium; } \
			|| echo "warning: could not install chromium; the browser tests will not run"; \
	fi
