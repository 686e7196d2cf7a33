#!/usr/bin/env bash
# `make test`: a private Kafka and PostgreSQL on their own ports and state folder (so a
# running `make run` is untouched), every test against them, then both stopped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

export AUTODM_STATE_DIR=${AUTODM_STATE_DIR:-$PWD/.local/test}
export KAFKA_PORT=${KAFKA_PORT:-19192} KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19193}
export PG_PORT=${PG_PORT:-15532} PG_DATABASES="autodm_test" PG_FAST=1
export AUTODM_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
export AUTODM_DATABASE_URL=postgresql+asyncpg://autodm:autodm@127.0.0.1:$PG_PORT/autodm_test

stop_all() {
    bash deploy/local/kafka.sh stop >/dev/null || true
    bash deploy/local/postgres.sh stop >/dev/null || true
}
trap stop_all EXIT

# Every run starts empty, as in CI: leftovers of an earlier run (open breakers, dead
# letters, committed offsets) made local reruns fail. KEEP_TEST_STATE=1 keeps them.
# (Not exported: the chaos run restarts both mid-test and must find its data.)
fresh=1
if [[ ${KEEP_TEST_STATE:-0} == 1 ]]; then
    fresh=0
else
    bash deploy/local/kafka.sh stop >/dev/null || true
    rm -rf "$AUTODM_STATE_DIR/kafka/data"
fi
bash deploy/local/kafka.sh start
PG_FRESH=$fresh bash deploy/local/postgres.sh start
# Fast suites first, the process-level ones last (the chaos run is the heaviest).
if [ "$#" -eq 0 ]; then
    set -- tests/unit sandbox tests/infra tests/integration tests/e2e tests/browser tests/chaos
fi
.venv/bin/pytest -q "$@"
