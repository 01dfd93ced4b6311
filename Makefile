# Canvas Live Events pipeline. The README's two commands: `make demo` and `make test`.
# Deploy targets (pubsub-setup, deploy-receiver, template-build, template-run, bq-table)
# are further down; each honours DRY_RUN=1 (print the commands instead of running them).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: help venv test demo bench clean schemas

help:
	@echo "make demo    run the whole system locally on generated deliveries"
	@echo "make test    create .venv, install the project with its test extras, run all tests"
	@echo "make bench   run the benchmarks under bench/"

# The venv is reinstalled when setup.py changes.
$(STAMP): setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

schemas: $(STAMP)
	$(PY) -m schemas.generate

demo: $(STAMP)
	$(PY) -m devkit.demo

bench: $(STAMP)
	$(PY) bench/core.py
	$(PY) bench/pipeline.py
	$(PY) bench/receiver.py
	$(PY) bench/compact.py
	$(PY) bench/sqs_relay.py

clean:
	rm -rf $(VENV) demo-output .demo dist-receiver build *.egg-info

# Fragments: the receiver bundle (mk/receiver.mk) and the Google Cloud deploy targets (mk/deploy.mk).
include $(wildcard mk/*.mk)
