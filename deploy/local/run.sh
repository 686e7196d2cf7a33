#!/usr/bin/env bash
# `make run`: Kafka, PostgreSQL, the Meta sandbox and every service on this machine, a
# demo of each DM route, then everything keeps running until Ctrl-C, which stops it all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

stop_all() {
    trap - INT TERM EXIT
    echo "stopping Kafka and PostgreSQL..."
    bash deploy/local/kafka.sh stop || true
    bash deploy/local/postgres.sh stop || true
}
trap stop_all INT TERM EXIT

bash deploy/local/kafka.sh start
bash deploy/local/postgres.sh start
.venv/bin/python deploy/local/stack.py
