#!/usr/bin/env bash
# `make drills`: the failover drills (tests/drills) on deploy/local/cluster.sh's 3-broker
# Kafka and PostgreSQL primary + standby, ports 21100-21199 (DRILLS_PORT_BASE). Not part
# of `make test`. SOAK_MINUTES (10), SOAK_KILL_EVERY (2), SOAK_RATE (50), DRILLS_RATE (10);
# the issue's soak is `make drills SOAK_MINUTES=60 SOAK_KILL_EVERY=10`.
# Extra arguments go to pytest (e.g. -k soak). The cluster is stopped at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
trap 'bash deploy/local/cluster.sh stop >/dev/null 2>&1 || true' EXIT
export DRILLS=1
rm -f .local/drills-report.json
.venv/bin/pytest -q -p no:logging -s tests/drills "$@"
.venv/bin/python -m tests.drills.table .local/drills-report.json
