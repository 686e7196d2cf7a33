# AutoDM — the two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed

.PHONY: run test venv lint typecheck contracts infra-up infra-down clean help

help:
	@echo "make run    - Kafka, PostgreSQL, the Meta sandbox and every service, with a demo (Ctrl-C stops all)"
	@echo "make test   - lint, type check and every test on a private Kafka/PostgreSQL instance"
	@echo "make contracts - regenerate schemas/events/*.json and docs/asyncapi/*.json"

$(VENV_STAMP): pyproject.toml
	python3.11 -m venv .venv
	.venv/bin/pip install --disable-pip-version-check -q --upgrade pip
	.venv/bin/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $@

venv: $(VENV_STAMP)

run: venv
	bash deploy/local/run.sh

test: venv lint typecheck
	bash deploy/local/test.sh

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: venv
	.venv/bin/mypy shared services sandbox scripts local_issuer

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
