# AutoDM — the two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed

.PHONY: run test chaos drills venv lint typecheck contracts infra-up infra-down clean help tools bench

help:
	@echo "make run    - Kafka, PostgreSQL, the Meta sandbox and every service, with a demo (Ctrl-C stops all)"
	@echo "make test   - lint, type check and every test on a private Kafka/PostgreSQL instance"
	@echo "make chaos  - the big fault-injection run (thousands of leads, kills, broker/DB restarts)"
	@echo "make drills - failover drills on a 3-broker Kafka and a PostgreSQL standby, and a soak"
	@echo "make contracts - regenerate schemas/events/*.json and docs/asyncapi/*.json"
	@echo "make bench  - the benchmark (docs/BENCHMARKS.md); not part of make test"

$(VENV_STAMP): pyproject.toml
	python3.11 -m venv .venv
	.venv/bin/pip install --disable-pip-version-check -q --upgrade pip
	.venv/bin/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $@

venv: $(VENV_STAMP)

run: venv
	bash deploy/local/run.sh

test: venv lint typecheck tools
	bash deploy/local/test.sh

# promtool (Debian's prometheus package) checks the alert rules in the tests; without root
# or apt the test says so and skips. chromium (Debian's) runs tests/browser.
tools:
	@command -v promtool >/dev/null || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends prometheus >/dev/null) \
	  || echo "promtool could not be installed: the alert-rule checks will be skipped"; }
	@# tests/browser drive Debian's chromium through Playwright (no browser download).
	@command -v chromium >/dev/null || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium >/dev/null) \
	  || echo "chromium could not be installed: the browser tests will fail"; }

# Kafka, PostgreSQL, sandbox and services on ports of their own (bench/README.md); prints
# the figures and writes .local/bench/results.json.
bench: venv
	.venv/bin/pip install --disable-pip-version-check -q -e '.[bench]'
	bash bench/run.sh --with-peer

# `make test` runs the small plan of tests/chaos; this is the big one (docs/RELIABILITY.md).
chaos: venv
	CHAOS_LEADS=$${CHAOS_LEADS:-3000} CHAOS_ACCOUNTS=$${CHAOS_ACCOUNTS:-20} \
	CHAOS_KILL_ROUNDS=$${CHAOS_KILL_ROUNDS:-3} CHAOS_RESTART_INFRA=1 \
	bash deploy/local/test.sh tests/chaos -p no:logging -s

# A 3-broker Kafka and a PostgreSQL primary + standby (deploy/local/cluster.sh), the drills
# of docs/RELIABILITY.md and a soak; not part of make test. SOAK_MINUTES=60 for the hour.
drills: venv
	SOAK_MINUTES=$${SOAK_MINUTES:-10} SOAK_KILL_EVERY=$${SOAK_KILL_EVERY:-2} \
	bash deploy/local/drills.sh

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports

typecheck: venv
	.venv/bin/mypy shared services cli sandbox scripts local_issuer

contracts: venv
	$(PY) scripts/export_contracts.py

infra-up: venv
	bash deploy/local/kafka.sh start
	bash deploy/local/postgres.sh start

infra-down:
	-bash deploy/local/kafka.sh stop
	-bash deploy/local/postgres.sh stop

clean: infra-down
	rm -rf .local/run .local/test
