#!/usr/bin/env bash
# `make run`: Kafka, PostgreSQL, the Meta sandbox and every service on this machine, a
# demo of each DM route, then everything keeps running (a service that dies is restarted,
# deploy/local/stack.py) until Ctrl-C, which stops it all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# With `make run 2>&1 | tee run.log`, Ctrl-C ends tee too: a write to the console then
# fails. Ignored SIGPIPE turns that into an error to shrug off instead of a death, and
# the stop scripts write to a file, so nothing can cut the stop short.
trap '' PIPE
STOP_LOG=${AUTODM_STATE_DIR:-.local/run}/logs/stop.log
# For the tests of this script (tests/infra): a stand-in for the stack, same Ctrl-C path.
STACK_CMD=${AUTODM_RUN_STACK:-.venv/bin/python deploy/local/stack.py}

say() { printf '%s\n' "$*" 2>/dev/null || true; }

stop_all() {
    trap - INT TERM EXIT
    trap '' INT TERM # a second Ctrl-C must not interrupt the stop either
    say "stopping Kafka and PostgreSQL..."
    mkdir -p "$(dirname "$STOP_LOG")"
    bash deploy/local/kafka.sh stop >>"$STOP_LOG" 2>&1 || say "kafka.sh stop failed: see $STOP_LOG"
    bash deploy/local/postgres.sh stop >>"$STOP_LOG" 2>&1 || say "postgres.sh stop failed: see $STOP_LOG"
    say "stopped (details in $STOP_LOG)"
}
trap stop_all INT TERM EXIT

# Traces without a network (docs/RUNBOOK.md, "Traces"): JSON lines here, read back with
# `autodm trace <trace id>` (`autodm status <lead>` prints a lead's); `AUTODM_TRACE_DIR=`
# (empty) runs without tracing.
export AUTODM_TRACE_DIR=${AUTODM_TRACE_DIR-$(realpath -m "${AUTODM_STATE_DIR:-.local/run}/traces")}

bash deploy/local/kafka.sh start
bash deploy/local/postgres.sh start
$STACK_CMD
