# The one interface: every target installs what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ENV ?= dev
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: help install browser demo local test unit lint format bench synth deploy openapi clean

help:
	@echo "make demo | local | test | unit | lint | format | bench | synth | deploy ENV=dev|staging|prod | browser | clean"

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,ops]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/.installed node_modules/.installed

# tests/browser drive headless Chromium through Debian's chromedriver (selenium never downloads a driver).
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
# a CJK font, or the sidebar's zh-CN text shows as empty boxes in screenshots
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc

browser:  ## Debian's chromium, chromium-driver and a CJK font, installed when one is missing (needs root)
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ] && [ -f $(CJK_FONT) ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "tests/browser need $(CHROMIUM), $(CHROMEDRIVER) and $(CJK_FONT): as root, run" >&2; \
		echo "  apt-get update && apt-get install -y chromium chromium-driver fonts-wqy-zenhei" >&2; \
		exit 1; \
	fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver fonts-wqy-zenhei

demo: $(BIN)/.installed  ## the whole pipeline on the local AWS stand-in, with a summary
	$(BIN)/aftersync demo

local: $(BIN)/.installed  ## keep the sandbox running on http://127.0.0.1:3000
	$(BIN)/aftersync local

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# `make test` runs pytest on TEST_WORKERS worker processes (pytest-xdist; `make test TEST_WORKERS=auto`: one a
# core). The sandbox tests (tests/e2e, tests/browser) keep to one worker, as do the tests on one synth
# (tests/conftest.py); the rest go to whichever worker is free.
TEST_WORKERS ?= 2

test: install browser lint  ## lint + unit, integration (moto), infra (synth, cdk-nag, cfn-lint), e2e (sandbox), browser (Chromium)
	$(BIN)/pytest -n $(TEST_WORKERS)

unit: $(BIN)/.installed  ## unit tests only (no AWS, no sandbox): the fast loop
	$(BIN)/pytest tests/unit -q

bench: $(BIN)/.installed  ## writes bench/RESULTS.md
	$(BIN)/python -m bench.run

synth: install  ## cdk.out for every environment; cdk-nag fails the synth on any unacknowledged finding
	cdk synth --all --quiet --output cdk.out
	$(BIN)/cfn-lint --config-file .cfnlintrc.yaml -- cdk.out/*.template.json

deploy: install  ## needs AWS credentials for the target account; see docs/configuration-and-deploying.md
	cdk deploy -c env=$(ENV) Aftersync-$(ENV) --require-approval broadening

openapi: $(BIN)/.installed  ## regenerate docs/openapi.json from the ingest route
	$(BIN)/python -c "from functions.ingest.handler import openapi_document as d; open('docs/openapi.json', 'w').write(d())"

clean:
	rm -rf cdk.out .aftersync .pytest_cache .mypy_cache .ruff_cache
