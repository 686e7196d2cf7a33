#!/usr/bin/env bash
# The production shape on one machine, for the failover drills (`make drills`): a 3-node
# Kafka 4 KRaft cluster (combined broker+controller nodes, the same Maven jars as
# kafka.sh) and a PostgreSQL 15 primary with a synchronous streaming-replication standby.
# Each node is started by kafka.sh / postgres.sh with a state folder of its own.
#
# usage: deploy/local/cluster.sh start|stop|status|env
#        deploy/local/cluster.sh kill-broker N|start-broker N|broker-pid N
#        deploy/local/cluster.sh kill-primary|promote|pg-role NODE
#
#   start          the three brokers (in parallel: each needs a quorum of controllers to
#                  be ready), then PostgreSQL node a (primary), node b (standby from
#                  pg_basebackup, standby.signal), then a waits for b on every commit.
#   stop           everything (brokers, both PostgreSQL nodes). Fine if not running.
#   env            the AUTODM_* settings that point the services at this cluster.
#   kill-broker N  SIGKILL broker N (1-3); start-broker N starts it again (recovers).
#   kill-primary   SIGKILL node a's postmaster; promote: node b becomes the primary.
#
# Environment: DRILLS_STATE_DIR (default <repo>/.local/drills), DRILLS_PORT_BASE (21100:
# brokers base+1..6, PostgreSQL base+10/+11; the drills' services use base+20..26).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
STATE=${DRILLS_STATE_DIR:-$REPO/.local/drills}
BASE=${DRILLS_PORT_BASE:-21100}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
STANDBY_NAME=autodm_standby
DATABASE=autodm_drills

log() { printf 'cluster.sh: %s\n' "$*"; }
err() { printf 'cluster.sh: ERROR: %s\n' "$*" >&2; }

broker_port() { echo $((BASE + 2 * $1 - 1)); }
controller_port() { echo $((BASE + 2 * $1)); }
pg_port() { [[ $1 == a ]] && echo $((BASE + 10)) || echo $((BASE + 11)); }

voters() {
    local i out=""
    for i in 1 2 3; do out+="${out:+,}$i@127.0.0.1:$(controller_port "$i")"; done
    echo "$out"
}

bootstrap() {
    local i out=""
    for i in 1 2 3; do out+="${out:+,}127.0.0.1:$(broker_port "$i")"; done
    echo "$out"
}

# kafka.sh for node $1 with its own ports and state folder; the overrides come last in
# server.properties, so they win over kafka.sh's single-node defaults.
kafka_node() {
    local n=$1
    shift
    KAFKA_PORT=$(broker_port "$n") KAFKA_CONTROLLER_PORT=$(controller_port "$n") \
        AUTODM_STATE_DIR=$STATE/kafka$n KAFKA_HEAP=${KAFKA_HEAP:-384m} KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-300} \
        KAFKA_OVERRIDES="node.id=$n controller.quorum.voters=$(voters) \
default.replication.factor=3 min.insync.replicas=2 \
offsets.topic.replication.factor=3 transaction.state.log.replication.factor=3 \
transaction.state.log.min.isr=2 share.coordinator.state.topic.replication.factor=3 \
share.coordinator.state.topic.min.isr=2 unclean.leader.election.enable=false" \
        bash "$SCRIPT_DIR/kafka.sh" "$@"
}

pg_node() {
    local node=$1
    shift
    PG_PORT=$(pg_port "$node") AUTODM_STATE_DIR=$STATE/pg-$node PG_DATABASES=$DATABASE \
        bash "$SCRIPT_DIR/postgres.sh" "$@"
}

as_pg() {
    if [[ $(id -u) == 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pgdir() { readlink -f "$STATE/pg-$1/postgres"; }

pg_pid() { head -n1 "$(pgdir "$1")/data/postmaster.pid" 2>/dev/null | tr -dc '0-9'; }

psql_on() {
    local node=$1
    shift
    as_pg "$PG_BIN/psql" -h "$(pgdir "$node")/socket" -p "$(pg_port "$node")" -U postgres \
        -d postgres -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

# One cluster id for the three nodes (kafka.sh formats each node's storage with it).
ensure_cluster_id() {
    local id_file=$STATE/kafka.cluster-id i
    mkdir -p "$STATE"
    if [[ ! -s $id_file ]]; then
        python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))' >"$id_file"
    fi
    for i in 1 2 3; do
        mkdir -p "$STATE/kafka$i/kafka"
        cp "$id_file" "$STATE/kafka$i/kafka/cluster.id"
    done
}

# A restarted broker's port can still be briefly held (a DRILLS_PORT_BASE in Linux's
# ephemeral range 32768-60999 makes it likelier): try again a few times.
start_broker_retrying() {
    local attempt
    for attempt in 1 2 3 4; do
        kafka_node "$1" start && return 0
        log "broker $1: start attempt $attempt failed; retrying in 5 s"
        sleep 5
    done
    return 1
}

start_kafka() {
    ensure_cluster_id
    bash "$SCRIPT_DIR/kafka.sh" jars >/dev/null
    local i pids=() failed=0
    # In parallel: a node is only "started" once a quorum of controllers answers.
    for i in 1 2 3; do
        start_broker_retrying "$i" >"$STATE/kafka$i.start.log" 2>&1 &
        pids+=($!)
    done
    for i in 0 1 2; do
        if ! wait "${pids[$i]}"; then
            err "broker $((i + 1)) did not start:"
            cat "$STATE/kafka$((i + 1)).start.log" >&2
            failed=1
        fi
    done
    ((failed == 0)) || exit 1
    log "Kafka brokers up: $(bootstrap)"
}

# Node b: a base backup of a, streaming from it as `autodm_standby`; then a waits for b's
# flush on every commit (synchronous_standby_names), so no acknowledged write is lost
# when a dies (an asynchronous standby can miss the last commits: docs/RELIABILITY.md).
start_postgres() {
    pg_node a start
    pg_node b status >/dev/null 2>&1 || true # creates b's cluster folder
    local b
    b=$(pgdir b)
    if [[ ! -f $b/data/PG_VERSION ]]; then
        log "pg_basebackup of node a into node b"
        as_pg rm -rf "$b/data"
        as_pg "$PG_BIN/pg_basebackup" -h "$(pgdir a)/socket" -p "$(pg_port a)" -U postgres \
            -D "$b/data" -X stream -c fast
        as_pg touch "$b/data/standby.signal"
        printf "primary_conninfo = 'host=%s port=%s user=postgres application_name=%s'\n" \
            "$(pgdir a)/socket" "$(pg_port a)" "$STANDBY_NAME" |
            as_pg tee -a "$b/data/postgresql.auto.conf" >/dev/null
    fi
    pg_node b start
    local deadline=$((SECONDS + 60))
    until [[ $(psql_on a -c "SELECT count(*) FROM pg_stat_replication WHERE application_name = '$STANDBY_NAME' AND state = 'streaming'") == 1 ]]; do
        ((SECONDS < deadline)) || { err "node b is not streaming from node a"; exit 1; }
        sleep 0.5
    done
    psql_on a -c "ALTER SYSTEM SET synchronous_standby_names = '$STANDBY_NAME'" -c "SELECT pg_reload_conf()" >/dev/null
    log "PostgreSQL primary a on $(pg_port a), synchronous standby b on $(pg_port b)"
}

cmd_env() {
    printf 'AUTODM_KAFKA_BOOTSTRAP=%s\n' "$(bootstrap)"
    printf 'AUTODM_DATABASE_URL=postgresql+asyncpg://autodm:autodm@/%s?host=127.0.0.1:%s&host=127.0.0.1:%s&target_session_attrs=read-write\n' \
        "$DATABASE" "$(pg_port a)" "$(pg_port b)"
    printf 'AUTODM_KAFKA_REPLICATION_FACTOR=3\nAUTODM_KAFKA_MIN_INSYNC_REPLICAS=2\n'
}

cmd_stop() {
    local i
    for i in 1 2 3; do kafka_node "$i" stop >/dev/null 2>&1 || true; done
    pg_node b stop >/dev/null 2>&1 || true
    pg_node a stop >/dev/null 2>&1 || true
    log "stopped"
}

cmd_kill_broker() {
    local n=$1 pid
    pid=$(tr -dc '0-9' <"$STATE/kafka$n/kafka/kafka.pid")
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    log "broker $n (pid $pid) killed"
}

cmd_kill_primary() {
    local pid
    pid=$(pg_pid a)
    [[ -n $pid ]] || { err "node a is not running"; exit 1; }
    kill -KILL "$pid"
    log "PostgreSQL node a (postmaster $pid) killed"
}

cmd_promote() {
    as_pg "$PG_BIN/pg_ctl" -D "$(pgdir b)/data" -w -t 60 promote >/dev/null
    log "node b promoted: $(psql_on b -c 'SELECT NOT pg_is_in_recovery()')"
}

case ${1:-} in
start) start_kafka && start_postgres ;;
stop) cmd_stop ;;
status)
    for i in 1 2 3; do kafka_node "$i" status || true; done
    pg_node a status || true
    pg_node b status || true
    ;;
env) cmd_env ;;
kill-broker) cmd_kill_broker "${2:?broker number}" ;;
start-broker) start_broker_retrying "${2:?broker number}" ;;
broker-pid) tr -dc '0-9' <"$STATE/kafka${2:?broker number}/kafka/kafka.pid" ;;
kill-primary) cmd_kill_primary ;;
promote) cmd_promote ;;
pg-role) psql_on "${2:?node a or b}" -c 'SELECT CASE WHEN pg_is_in_recovery() THEN $$standby$$ ELSE $$primary$$ END' ;;
*)
    echo "usage: $0 start|stop|status|env|kill-broker N|start-broker N|kill-primary|promote|pg-role NODE" >&2
    exit 2
    ;;
esac
