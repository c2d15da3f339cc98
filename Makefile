# Entry points for people and CI. `make demo` brings up the local, GPU-free
# demo; `make test` runs every test. Both work on a fresh clone: they build
# their own virtual environment from pinned requirements first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
COLLECTION_LINK := .collections/ansible_collections/do_solutions/gtc_demo
LOCAL_INVENTORY := inventories/local
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(BIN):$(PATH)

.PHONY: help platform-check demo-setup setup demo stop start teardown rehearse lint sanity cluster-bin image-inputs pytest unit integration test clean

help:
	@echo "make demo      set up and start the local demo (no cloud, no GPU; Linux, Python 3.11-3.13)"
	@echo "make stop      stop the local demo, keeping what it installed"
	@echo "make start     start it again (also after a reboot)"
	@echo "make teardown  stop the local demo and remove everything it made"
	@echo "make test      run every test (lint, sanity, unit, integration)"
	@echo "make rehearse ENV=dev   rehearse the cloud deployment here, with no DigitalOcean account"

# What the demo needs, checked before anything is installed (scripts/check_platform.py).
platform-check:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; the demo needs Python 3.11-3.13 (make PYTHON=python3.12 demo)" >&2; exit 1; }
	@$(PYTHON) scripts/check_platform.py

# The demo's own venv: ansible-core alone (requirements/demo.txt). The roles
# build the demo's programs' venvs under $$GTC_DEMO_HOME themselves.
demo-setup: $(VENV)/.demo-installed $(COLLECTION_LINK)

$(VENV)/.demo-installed: requirements/demo.txt | platform-check
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==25.3
	$(BIN)/python -m pip install -q -r requirements/demo.txt
	touch $@

setup: $(VENV)/.installed $(COLLECTION_LINK)

# The test tooling on top of the demo's venv: the `ansible` package's
# collections, the linters and pytest, the load generator (editable), and the
# benchmarks with the perf profile package they import (their tests import both).
$(VENV)/.installed: $(VENV)/.demo-installed requirements/dev.txt apps/loadgen/pyproject.toml benchmarks/pyproject.toml
	$(BIN)/python -m pip install -q -r requirements/dev.txt
	@if [ -f apps/loadgen/pyproject.toml ]; then $(BIN)/python -m pip install -q -e 'apps/loadgen[test]'; fi
	$(BIN)/python -m pip install -q --no-deps -e benchmarks
	touch $@

# Ansible finds collections only under an ansible_collections/<ns>/<name>
# path: link this checkout there so `do_solutions.gtc_demo.*` resolves.
$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

demo: demo-setup
	$(BIN)/ansible-playbook site.yml -i $(LOCAL_INVENTORY)

# stop shuts supervisord and the demo's programs down and keeps the venvs, the
# model and the settings; start is site.yml again, which finds everything
# installed and only starts what is not running.
stop: demo-setup
	$(BIN)/ansible-playbook playbooks/stop.yml -i $(LOCAL_INVENTORY)

start: demo

# teardown leaves nothing: the demo's folder ($$GTC_DEMO_HOME, with its venvs),
# then this checkout's .venv and collection link.
teardown: demo-setup
	$(BIN)/ansible-playbook playbooks/teardown.yml -i $(LOCAL_INVENTORY)
	rm -rf $(VENV) .collections

# The cloud deployment of inventories/$(ENV), rehearsed on this machine (see
# tests/rehearsal): site.yml, validate.yml, what a real run creates, teardown.
ENV ?= dev
rehearse: setup cluster-bin
	$(BIN)/python tests/rehearsal/cli.py --env $(ENV)

# ansible-lint's production profile, then ruff and mypy over the plugins and the app (tests/lint/run).
lint: setup
	$(BIN)/ansible-lint --profile production
	tests/lint/run

sanity: setup
	tests/sanity/run

# The test control plane's binaries (kube-apiserver, scheduler, controller
# manager, etcd, kwok, helm) are built from the Go module proxy once and cached
# under ~/.cache/gtc-demo/k8s-bin; build them before pytest so a cold build
# (about 18 CPU-minutes) does not count against a single test's timeout.
cluster-bin:
	tests/cluster/build

# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
# Two workers (pytest-xdist): most tests wait on a subprocess, a server or a
# cluster, so two run in the time of one on CI's two cores. tests/conftest.py
# keeps the tests of each fixed-name session fixture on one worker.
PYTEST_WORKERS ?= 2
pytest: setup
	$(BIN)/python -m pytest tests -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

unit: PYTEST_ARGS += -m "not integration"
unit: pytest

integration: PYTEST_ARGS += -m integration
integration: pytest

# The image tests' inputs (a debootstrap stand-in for the Dockerfile's base
# image and the distribution registry built from the Go module proxy), made
# once and cached under ~/.cache/gtc-demo, before pytest for the same reason.
image-inputs: setup
	$(BIN)/python tests/image_support/prepare.py

test: lint sanity cluster-bin image-inputs pytest

clean:
	rm -rf $(VENV) .collections tests/output
