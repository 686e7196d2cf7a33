#!/usr/bin/env bash
# Local private PostgreSQL cluster for AutoDM (no Docker, no system service).
#
# usage: deploy/local/postgres.sh start|stop|status|url [dbname]
#
#   start   initdb once, start on 127.0.0.1:$PG_PORT, then (idempotently) create the
#           role autodm/autodm and the databases in $PG_DATABASES. Safe to re-run; a
#           server killed with -9 is recovered on the next start.
#   stop    fast shutdown (then immediate, then SIGKILL). Fine if not running.
#   status  exit 0 = running and accepting connections, 3 = not running, 4 = alive, not ready.
#   url     print the SQLAlchemy URL, e.g. postgresql+asyncpg://autodm:autodm@127.0.0.1:15432/autodm
#
# Environment (all optional):
#   PG_PORT              TCP port on 127.0.0.1                  (default 15432)
#   PG_DATABASES         databases to create, space separated    (default "autodm")
#   AUTODM_STATE_DIR     state root; cluster in $AUTODM_STATE_DIR/postgres
#                                                                (default <repo>/.local/run)
#   PG_FRESH=1           drop and recreate the databases in $PG_DATABASES at start (tests:
#                        every run starts from an empty database, like CI)
#   PG_FAST=1            fsync/synchronous_commit/full_page_writes off: tests ONLY, a crash
#                        of the machine can corrupt the cluster
#   PG_EXTRA_CONF        more postgresql.conf lines, ';'-separated (cluster.sh: replication)
#   PG_BIN               PostgreSQL bin dir       (default /usr/lib/postgresql/15/bin)
#   PG_MAX_CONNECTIONS   max_connections                         (default 200)
#   PG_START_TIMEOUT / PG_STOP_TIMEOUT   seconds                 (default 60 / 30)
#
# Running as root (CI, these dev machines): initdb refuses root, so every server-side
# command runs as the `postgres` user via runuser, and the cluster folder is owned by it.
# That user must be able to traverse to the state dir: folders inside the repo (and the
# state dir itself) get o+x if needed; if a folder above them is closed (e.g. a repo under
# /root), the cluster goes to /var/tmp/autodm-postgres-<hash> instead and
# $AUTODM_STATE_DIR/postgres becomes a symlink to it.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)

PG_PORT=${PG_PORT:-15432}
PG_DATABASES=${PG_DATABASES:-autodm}
PG_FAST=${PG_FAST:-0}
PG_FRESH=${PG_FRESH:-0}
PG_MAX_CONNECTIONS=${PG_MAX_CONNECTIONS:-200}
PG_START_TIMEOUT=${PG_START_TIMEOUT:-60}
PG_STOP_TIMEOUT=${PG_STOP_TIMEOUT:-30}
STATE_DIR_IN=${AUTODM_STATE_DIR:-$REPO/.local/run}
APP_USER=autodm
APP_PASSWORD=autodm

log() { printf 'postgres.sh: %s\n' "$*"; }
err() { printf 'postgres.sh: ERROR: %s\n' "$*" >&2; }

for var in PG_PORT PG_MAX_CONNECTIONS PG_START_TIMEOUT PG_STOP_TIMEOUT; do
    if ! [[ ${!var} =~ ^[0-9]+$ ]]; then
        err "$var must be a number, got '${!var}'"
        exit 2
    fi
done
for db in $PG_DATABASES; do
    if ! [[ $db =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
        err "PG_DATABASES: '$db' is not a plain identifier"
        exit 2
    fi
done

find_pg_bin() {
    if [[ -n ${PG_BIN:-} ]]; then
        printf '%s' "$PG_BIN"
        return
    fi
    if [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then
        printf '%s' /usr/lib/postgresql/15/bin
        return
    fi
    local d
    d=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1 || true)
    if [[ -n $d ]]; then
        printf '%s' "$d"
        return
    fi
    if command -v pg_ctl >/dev/null; then
        dirname "$(command -v pg_ctl)"
        return
    fi
    err "PostgreSQL binaries not found (set PG_BIN, e.g. /usr/lib/postgresql/15/bin)"
    exit 2
}

IS_ROOT=0
[[ $(id -u) == 0 ]] && IS_ROOT=1

# Run a PostgreSQL command as the cluster owner (postgres when we are root).
as_pg() {
    if ((IS_ROOT)); then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# True if the cluster owner can traverse into directory $1.
pg_can_reach() {
    if ((IS_ROOT)); then
        (cd / && runuser -u postgres -- test -x "$1") 2>/dev/null
    else
        test -x "$1"
    fi
}

# Give o+x to closed folders between the state dir and the repo (ours to open),
# and to the state dir itself.
open_path_for_postgres() {
    local d=$1
    while :; do
        if [[ $d == "$STATE_DIR" || $d == "$REPO" || $d == "$REPO"/* ]]; then
            if ! [[ $(stat -c %A "$d") =~ [xt]$ ]]; then
                chmod o+x "$d"
                log "chmod o+x $d (so the postgres user can reach the state dir)"
            fi
        fi
        [[ $d == / || $d == "$REPO" ]] && break
        d=$(dirname "$d")
    done
}

# Sets PGDIR (real path of the cluster folder, owned by the cluster owner).
resolve_pgdir() {
    mkdir -p "$STATE_DIR_IN"
    STATE_DIR=$(cd "$STATE_DIR_IN" && pwd -P)
    local link=$STATE_DIR/postgres
    if ((!IS_ROOT)); then
        PGDIR=$link
        mkdir -p "$PGDIR"
        chmod 700 "$PGDIR"
        return
    fi
    if [[ -L $link ]]; then
        PGDIR=$(readlink -f "$link")
    else
        if ! pg_can_reach "$STATE_DIR"; then
            open_path_for_postgres "$STATE_DIR"
        fi
        if pg_can_reach "$STATE_DIR"; then
            PGDIR=$link
        elif [[ -d $link ]]; then
            err "the postgres user cannot reach $STATE_DIR (a folder above it is closed) and $link already exists."
            err "Open the path (chmod o+x on each folder) or set AUTODM_STATE_DIR to a folder the postgres user can reach."
            exit 1
        else
            local hash
            hash=$(printf '%s' "$STATE_DIR" | sha1sum | cut -c1-12)
            PGDIR=/var/tmp/autodm-postgres-$hash
            log "the postgres user cannot reach $STATE_DIR (a folder above the repo is closed);"
            log "using $PGDIR for the cluster, linked from $link"
            mkdir -p "$PGDIR"
            ln -sfn "$PGDIR" "$link"
        fi
    fi
    mkdir -p "$PGDIR"
    chown postgres:postgres "$PGDIR"
    chmod 700 "$PGDIR"
    if ! pg_can_reach "$PGDIR"; then
        err "the postgres user cannot reach $PGDIR; set AUTODM_STATE_DIR to a folder it can reach"
        exit 1
    fi
}

# ---------------------------------------------------------------- helpers

port_listening() {
    if command -v ss >/dev/null; then
        [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
    else
        # shellcheck disable=SC2016  # $1 is expanded by the inner bash
        timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
    fi
}

port_owner() {
    local line
    if command -v ss >/dev/null; then
        line=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1 || true)
        [[ -n $line ]] && printf ' (%s)' "$line"
    fi
    return 0
}

# True if process $1 exists and is not a zombie.
pid_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1 || true)
    [[ $state != Z ]]
}

# Prints the pid of our running postmaster, or fails. Checks the process really is a
# postgres serving $DATA (a stale postmaster.pid may name a reused pid).
running_pid() {
    [[ -f $DATA/postmaster.pid ]] || return 1
    local pid
    pid=$(head -n1 "$DATA/postmaster.pid" | tr -dc '0-9')
    [[ -n $pid ]] || return 1
    pid_alive "$pid" || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        [[ $(cat "/proc/$pid/comm" 2>/dev/null) == postgres ]] || return 1
        tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF "$DATA" || return 1
    fi
    printf '%s' "$pid"
}

running_port() {
    sed -n 4p "$DATA/postmaster.pid" 2>/dev/null | tr -dc '0-9'
}

is_ready() {
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -d postgres -t 2 >/dev/null 2>&1
}

show_log() {
    if [[ -s $LOG ]]; then
        echo "----- last 40 lines of $LOG -----" >&2
        tail -n 40 "$LOG" >&2
        echo "-----" >&2
    fi
}

# After a kill -9 of the postmaster its backends exit on their own within moments;
# a new postmaster refuses to start while they still hold the old shared memory.
# Wait for such orphans (processes whose cwd is our data dir), then kill them.
reap_orphans() {
    [[ -d /proc ]] || return 0
    local deadline=$((SECONDS + 10)) pids p
    while :; do
        pids=()
        for p in /proc/[0-9]*; do
            [[ $(readlink "$p/cwd" 2>/dev/null) == "$DATA" ]] && pids+=("${p#/proc/}")
        done
        ((${#pids[@]} == 0)) && return 0
        if ((SECONDS >= deadline)); then
            log "killing leftover server processes of a crashed postmaster: ${pids[*]}"
            kill -KILL "${pids[@]}" 2>/dev/null || true
            sleep 1
            return 0
        fi
        sleep 0.5
    done
}

write_conf() {
    local f=$DATA/autodm.conf
    {
        echo "# Generated by deploy/local/postgres.sh on every start; edits are overwritten."
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $PG_PORT"
        echo "unix_socket_directories = '$SOCK'"
        echo "max_connections = $PG_MAX_CONNECTIONS"
        echo "shared_buffers = 256MB"
        echo "log_line_prefix = '%m [%p] %q%u@%d '"
        if [[ $PG_FAST == 1 ]]; then
            echo "# PG_FAST=1: for tests only. Unsafe on a machine crash."
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
        fi
        # PG_EXTRA_CONF: more lines (';'-separated), e.g. replication (deploy/local/cluster.sh).
        if [[ -n ${PG_EXTRA_CONF:-} ]]; then
            tr ';' '\n' <<<"$PG_EXTRA_CONF"
        fi
    } >"$f.tmp"
    mv "$f.tmp" "$f"
    ((IS_ROOT)) && chown postgres:postgres "$f"
    if ! grep -q "^include_if_exists = 'autodm.conf'" "$DATA/postgresql.conf"; then
        echo "include_if_exists = 'autodm.conf'" >>"$DATA/postgresql.conf"
    fi
}

init_cluster() {
    if [[ -f $DATA/PG_VERSION ]]; then
        local have want
        have=$(cat "$DATA/PG_VERSION")
        want=$("$BIN/pg_ctl" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/')
        if [[ $have != "$want" ]]; then
            err "$DATA holds a PostgreSQL $have cluster but $BIN is PostgreSQL $want (set PG_BIN)"
            exit 1
        fi
        return 0
    fi
    if [[ -d $DATA ]] && [[ -n $(ls -A "$DATA") ]]; then
        err "$DATA exists, is not empty and holds no cluster (interrupted initdb?); remove it and retry"
        exit 1
    fi
    log "initdb in $DATA"
    if ! as_pg "$BIN/initdb" -D "$DATA" -U postgres --encoding=UTF8 --locale=C \
            --auth-local=trust --auth-host=scram-sha-256 --no-instructions \
            >"$PGDIR/initdb.log" 2>&1; then
        err "initdb failed:"
        tail -n 40 "$PGDIR/initdb.log" >&2
        exit 1
    fi
}

psql_admin() {
    as_pg "$BIN/psql" -h "$SOCK" -p "$1" -U postgres -d postgres -X -q -A -t -v ON_ERROR_STOP=1 "${@:2}"
}

ensure_role_and_dbs() {
    local port=$1 db exists
    psql_admin "$port" -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$APP_USER') THEN
    CREATE ROLE $APP_USER LOGIN CREATEDB PASSWORD '$APP_PASSWORD';
  END IF;
END \$\$;" >/dev/null
    for db in $PG_DATABASES; do
        if [[ $PG_FRESH == 1 ]]; then
            psql_admin "$port" -c "SET client_min_messages = warning" \
                -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
        fi
        exists=$(psql_admin "$port" -c "SELECT 1 FROM pg_database WHERE datname = '$db'")
        if [[ -z $exists ]]; then
            psql_admin "$port" -c "CREATE DATABASE \"$db\" OWNER $APP_USER" >/dev/null
            log "created database $db"
        fi
    done
}

# ---------------------------------------------------------------- commands

setup_paths() {
    BIN=$(find_pg_bin)
    resolve_pgdir
    DATA=$PGDIR/data
    SOCK=$PGDIR/socket
    LOG=$PGDIR/postgres.log
}

cmd_start() {
    setup_paths
    exec 9>"$PGDIR/.lock"
    flock 9   # one start/stop at a time for this cluster

    init_cluster
    as_pg mkdir -p "$SOCK"
    as_pg chmod 700 "$SOCK"

    local pid port
    if pid=$(running_pid); then
        port=$(running_port)
        if [[ $port != "$PG_PORT" ]]; then
            err "this cluster is already running (pid $pid) on port $port, not PG_PORT=$PG_PORT; run '$0 stop' first or use PG_PORT=$port"
            exit 1
        fi
        local deadline=$((SECONDS + PG_START_TIMEOUT))
        until is_ready "$port"; do
            if ((SECONDS >= deadline)); then
                err "server (pid $pid) not accepting connections on port $port after ${PG_START_TIMEOUT}s"
                show_log
                exit 1
            fi
            sleep 0.5
        done
        ensure_role_and_dbs "$port"
        log "already running (pid $pid) on 127.0.0.1:$port"
        return 0
    fi

    # Not running. Clean up after a crash: orphaned backends, a postmaster.pid whose pid
    # now belongs to another process, stale socket lock files in our private socket dir.
    reap_orphans
    if [[ -f $DATA/postmaster.pid ]]; then
        local stale
        stale=$(head -n1 "$DATA/postmaster.pid" | tr -dc '0-9')
        log "found a stale postmaster.pid (pid ${stale:-?} is not our server: crash or kill -9?); recovering"
        # postgres itself only removes it when kill(pid, 0) fails, and refuses to start
        # when that pid was reused by another process or is an unreaped zombie (seen
        # here: a killed postmaster is re-parented to an init that reaps late). No
        # process of the old server is left (reap_orphans), so it is safe to remove.
        rm -f "$DATA/postmaster.pid"
    fi
    rm -f "$SOCK"/.s.PGSQL.*.lock

    if port_listening "$PG_PORT"; then
        err "port $PG_PORT is already in use by another process$(port_owner "$PG_PORT")."
        err "Stop that process or choose a free port with PG_PORT=<port> (e.g. PG_PORT=$((PG_PORT + 1000)) $0 start)."
        exit 1
    fi

    write_conf
    [[ -f $LOG ]] && mv -f "$LOG" "$PGDIR/postgres.previous.log"
    log "starting PostgreSQL $(cat "$DATA/PG_VERSION") on 127.0.0.1:$PG_PORT$([[ $PG_FAST == 1 ]] && echo ' (PG_FAST=1: fsync off)'), cluster in $PGDIR"
    # 9>&-: the server must not inherit the lock.
    if ! as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t "$PG_START_TIMEOUT" start >/dev/null 9>&-; then
        err "PostgreSQL did not start"
        show_log
        exit 1
    fi
    ensure_role_and_dbs "$PG_PORT"
    log "ready (pid $(running_pid || echo '?')) on 127.0.0.1:$PG_PORT, databases: $PG_DATABASES"
}

cmd_stop() {
    setup_paths
    exec 9>"$PGDIR/.lock"
    flock 9
    local pid
    if ! pid=$(running_pid); then
        log "not running"
        return 0
    fi
    log "stopping (pid $pid) ..."
    if ! as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t "$PG_STOP_TIMEOUT" stop >/dev/null 2>&1; then
        log "fast shutdown did not finish in ${PG_STOP_TIMEOUT}s; immediate shutdown"
        as_pg "$BIN/pg_ctl" -D "$DATA" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
    fi
    # pg_ctl returns once postmaster.pid is gone; the process may need a moment more.
    local deadline=$((SECONDS + 5))
    while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if pid_alive "$pid"; then
        log "sending SIGKILL to $pid"
        kill -KILL "$pid" 2>/dev/null || true
        reap_orphans
    fi
    log "stopped"
}

cmd_status() {
    setup_paths
    local pid port
    if pid=$(running_pid); then
        port=$(running_port)
        if is_ready "$port"; then
            log "running (pid $pid) on 127.0.0.1:$port, cluster in $PGDIR"
            return 0
        fi
        log "process $pid is alive but not accepting connections on port $port"
        return 4
    fi
    if [[ -f ${DATA}/postmaster.pid ]]; then
        log "not running (stale postmaster.pid)"
    else
        log "not running"
    fi
    return 3
}

cmd_url() {
    local db=${1:-autodm}
    printf 'postgresql+asyncpg://%s:%s@127.0.0.1:%s/%s\n' "$APP_USER" "$APP_PASSWORD" "$PG_PORT" "$db"
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) cmd_url "${2:-}" ;;
*)
    echo "usage: $0 start|stop|status|url [dbname]" >&2
    exit 2
    ;;
esac
