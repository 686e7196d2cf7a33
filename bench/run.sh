#!/usr/bin/env bash
# `make bench`: Kafka and PostgreSQL of its own (durable settings: fsync on, as deployed),
# then `python -m bench` (raw Kafka limit, end to end at fixed loads, flat out, scale), and
# both stopped. Ports apart from `make run` (19092/15432) and `make test` (19192/15532).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export AUTODM_STATE_DIR=${AUTODM_STATE_DIR:-$PWD/.local/bench}
export KAFKA_PORT=${KAFKA_PORT:-19692} KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19693}
export PG_PORT=${PG_PORT:-16032} PG_DATABASES="autodm_bench"
export AUTODM_LOG_LEVEL=${AUTODM_LOG_LEVEL:-INFO}
# BENCH_TRACE_RATIO=0.1: the services trace that share of leads (parent-based, as deployed;
# docs/RUNBOOK.md, "Traces"), spans written as JSON lines under the bench's state: CPU per
# DM with tracing on, against a run without it (tracing off: nothing is instrumented).
if [ -n "${BENCH_TRACE_RATIO:-}" ]; then
    export OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=$BENCH_TRACE_RATIO
    export AUTODM_TRACE_DIR=$AUTODM_STATE_DIR/traces
    rm -rf "$AUTODM_TRACE_DIR"
    echo "bench: tracing on, ratio $BENCH_TRACE_RATIO, spans in $AUTODM_TRACE_DIR"
fi

stop_all() {
    bash deploy/local/kafka.sh stop >/dev/null || true
    bash deploy/local/postgres.sh stop >/dev/null || true
}
trap stop_all EXIT

# --with-peer: the peer's phases (bench/peer.py) first, before AutoDM's infrastructure is up.
for arg in "$@"; do
    if [ "$arg" = --with-peer ]; then .venv/bin/python -m bench.peer "$@"; fi
done

bash deploy/local/kafka.sh start
bash deploy/local/postgres.sh start
.venv/bin/python -m bench "$@"
